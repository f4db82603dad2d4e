Feature: The evaluation context gives segment values by segment name
  Attributes named like a segment are its value; the targeting key is the value of the
  UserId segment. Numbers and booleans are written as the CLI takes them; null is no value.

  Background:
    Given a feats App with the shop's features
    And the provider is registered and ready
    And "PaymentProcessor" is configured by Country:
      | Country | answer                                  |
      | CA      | static premium                          |
      | US      | rollout by UserId: aperture 50, acme 50 |
      | *       | static acme                             |

  @spec-3.1.1 @spec-1.3.1.1
  Scenario: A rule matching an attribute is TARGETING_MATCH
    Given the context has "Country" set to "CA"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "premium"
    And the reason is "TARGETING_MATCH"
    And the flag metadata explains "rule Country=CA: static premium"

  @spec-3.1.1
  Scenario: No rule matching falls through
    Given the context has "Country" set to "GB"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "acme"
    And the reason is "STATIC"

  @spec-3.1.1 @feats-rollout
  Scenario: The targeting key is the UserId a rollout splits by
    Given the context has "Country" set to "US"
    When the string flag "PaymentProcessor" is evaluated for targeting keys 1 to 200 with the default "none"
    Then every result has the reason "SPLIT" and no error
    And every variant is what feats gives the same shoppers in "US"
    And the variants split about 50% "aperture" and the rest "acme"

  @spec-3.1.2
  Scenario Outline: Numbers and booleans name the same segment values as text
    Given the context has "Country" set to "US"
    And the context has "UserId" set to <value>
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the variant is "<variant>"
    And the reason is "SPLIT"

    Examples:
      | value | variant  |
      | 2     | acme     |
      | "2"   | acme     |
      | 3     | aperture |
      | "3"   | aperture |

  @spec-3.1.1
  Scenario: An attribute naming the segment wins over the targeting key
    Given the context has "Country" set to "US"
    And the context's targeting key is "3"
    And the context has "UserId" set to 2
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the variant is "acme"

  @spec-1.3.1.1 @feats-missing-segment
  Scenario: An empty context answers the default implementation and says why
    Given the context is empty
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "acme"
    And the reason is "DEFAULT"
    And no error is reported
    And the flag metadata explains "give Country=VALUE"

  @spec-1.3.1.1 @feats-missing-segment
  Scenario: A null attribute is no value
    Given the context has "Country" set to null
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "acme"
    And the reason is "DEFAULT"

  @feats-missing-segment
  Scenario: A rollout without its segment answers the default and names what is missing
    Given the context has "Country" set to "US"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "acme"
    And the reason is "DEFAULT"
    And the flag metadata explains "give UserId=VALUE"

  @spec-3.2.3
  Scenario: The provider sees the API, client and invocation contexts merged
    Given the API-level context has "Country" set to "GB"
    And the client-level context has "Country" set to "US"
    And the context's targeting key is "3"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the variant is "aperture"
    And the reason is "SPLIT"
