"""Deliberate mistakes: tests/typing/test_type_checkers.py asserts that mypy --strict and
pyright report each line whose trailing comment says what mypy reports (after "E"
and a colon), and nothing else ("P" would mark what only pyright reports).

Excluded from the project's own mypy run (pyproject [tool.mypy] exclude): it must fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import feats
import feats.aio


@dataclass
class User:
    id: int


@dataclass
class Order:
    total: float


aio_app = feats.aio.App()
sync_app = feats.App()


class PaymentProcessor(feats.aio.FeatureClass[[User], str], app=aio_app):
    @aio_app.default
    def acme(self, user: User) -> str:
        return "acme"

    async def premium(self, user: User) -> str:
        return "premium"


class Shipping(feats.FeatureClass[[User, Order], float], app=sync_app):
    @sync_app.default
    def standard(self, user: User, order: Order) -> float:
        return 4.99

    def free(self, user: User, order: Order) -> float:
        return 0.0


@aio_app.boolean
def ImageProcessing(user: User) -> bool:
    return True


@sync_app.boolean
def Banner(user: User) -> bool:
    return False


async def mistakes(user: User, order: Order) -> None:
    await PaymentProcessor.create(order)  # E: Argument 1 to "create" of "FeatureClass" has incompatible type "Order"; expected "User"
    await PaymentProcessor.create()  # E: Too few arguments for "create" of "FeatureClass"
    await PaymentProcessor.create(user, order)  # E: Too many arguments for "create" of "FeatureClass"
    await PaymentProcessor.create(user=user)  # E: Unexpected keyword argument "user" for "create" of "FeatureClass"
    fee: int = await PaymentProcessor.create(user)  # E: Incompatible types in assignment (expression has type "str", variable has type "int")
    name: str = PaymentProcessor.create(user)  # E: Incompatible types in assignment (expression has type "Coroutine[Any, Any, str]", variable has type "str")
    PaymentProcessor.find_implementation(order)  # E: Argument 1 to "find_implementation" of "FeatureClassBase" has incompatible type "Order"; expected "User"
    PaymentProcessor.explain(user, user)  # E: Too many arguments for "explain" of "FeatureClassBase"
    await PaymentProcessor.used_implementation("acme", order)  # E: Argument 2 to "used_implementation" of "FeatureClass" has incompatible type "Order"; expected "User"
    PaymentProcessor.acme(user)  # E: Argument 1 to "acme" of "PaymentProcessor" has incompatible type "User"; expected "PaymentProcessor"
    await ImageProcessing.is_enabled(order)  # E: Argument 1 to "is_enabled" of "Boolean" has incompatible type "Order"; expected "User"
    enabled: str = await ImageProcessing.is_enabled(user)  # E: Incompatible types in assignment (expression has type "bool", variable has type "str")
    await Shipping.create(user, order)  # E: Incompatible types in "await" (actual type "float", expected type "Awaitable[Any]")
    Shipping.create(order, user)  # E: Argument 1 to "create" of "FeatureClass" has incompatible type "Order"; expected "User"
    cost: str = Shipping.create(user, order)  # E: Incompatible types in assignment (expression has type "float", variable has type "str")
    Banner.is_enabled(user, order)  # E: Too many arguments for "is_enabled" of "Boolean"
    await aio_app.admin.set_state(42, None, author="me", reason="typo")  # E: Argument 1 to "set_state" of "Admin" has incompatible type "int"; expected "FeatureHandleBase | str"
    sync_app.admin.set_state(PaymentProcessor, None, author="me")  # E: Missing named argument "reason" for "set_state" of "Admin"


# A sync feature class on the asyncio App (at import, a TypeError too).
class WrongShell(feats.FeatureClass[[User], str], app=aio_app):  # E: Argument "app" to "__init_subclass__" of "FeatureClass" has incompatible type "feats.aio._app.App"; expected "feats._app.App"
    @sync_app.default
    def only(self, user: User) -> str:
        return "only"
