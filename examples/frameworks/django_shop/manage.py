"""Django's command line for the example shop: ``python manage.py runserver``, and
``python manage.py feats list`` (the feats CLI on settings.FEATS)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
