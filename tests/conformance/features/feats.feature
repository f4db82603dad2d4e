Feature: feats targeting through OpenFeature: rules, rollouts, experiments, staleness

  @feats-rules
  Scenario Outline: Rules by several segments, a rule without a fallthrough
    Given a feats App with the shop's features
    And the provider is registered and ready
    And "Limit" is configured by Country, Plan:
      | Country | Plan | answer      |
      | CA      | beta | static high |
      | CA      | free | static none |
    And the context has "Country" set to "<country>"
    And the context has "Plan" set to "<plan>"
    When the integer flag "Limit" is evaluated with the default 1
    Then the value is <value>
    And the variant is "<variant>"
    And the reason is "<reason>"

    Examples:
      | country | plan | value | variant  | reason          |
      | CA      | beta | 100   | high     | TARGETING_MATCH |
      | CA      | free | 0     | none     | TARGETING_MATCH |
      | US      | beta | 10    | standard | DEFAULT         |

  @feats-experiment
  Scenario: Every resolution an experiment decided records one exposure
    Given a feats App with the shop's features
    And the provider is registered and ready
    And "Banner" splits everyone by experiment by UserId: plain 50, sale 50
    When the object flag "Banner" is evaluated for targeting keys 1 to 120 with the default {}
    Then every result has the reason "SPLIT" and no error
    And the App has recorded 120 exposures of "Banner", one per variant served

  @feats-experiment
  Scenario: Errors and providers told not to record no exposures
    Given a feats App with the shop's features
    And the provider is registered and ready
    And "PaymentProcessor" splits everyone by experiment by UserId: acme 50, premium 50
    When the integer flag "PaymentProcessor" is evaluated for targeting keys 1 to 20 with the default 1
    Given the provider records no exposures
    When the string flag "PaymentProcessor" is evaluated for targeting keys 1 to 20 with the default "none"
    Then every result has the reason "SPLIT" and no error
    And the App has recorded no exposure of "PaymentProcessor"

  @feats-change @spec-5.1.2
  Scenario: A change written by another App reaches the provider as an event
    Given a feats App with the shop's features on Redis
    And the provider is registered and ready
    And a handler for PROVIDER_CONFIGURATION_CHANGED events on the client
    When another App changes "Discount" to answer "half" for everyone
    Then the PROVIDER_CONFIGURATION_CHANGED handler runs for "Discount" at its new version
    When the float flag "Discount" is evaluated with the default 0.9
    Then the value is 0.5
    And the flag metadata holds the version of "Discount"

  @feats-stale @spec-5.1.1
  Scenario: An App that loses Redis is STALE and keeps answering; back, it is READY again
    Given a feats App with the shop's features on Redis through a proxy
    And the provider is registered and ready
    And "PaymentProcessor" answers "premium" for everyone
    And a handler for PROVIDER_STALE events on the client
    And a handler for PROVIDER_READY events on the client
    When Redis becomes unreachable
    Then the client's provider status becomes "STALE"
    And the PROVIDER_STALE handler runs
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "premium"
    And the reason is "STALE"
    And no error is reported
    When Redis is reachable again
    Then the client's provider status becomes "READY"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the reason is "STATIC"
