Feature: Provider lifecycle: initialization, status, events and shutdown
  initialize() starts the App the provider owns and returns once configuration is loaded;
  the App's state changes become provider events; shutdown() closes the App.

  Background:
    Given a feats App with the shop's features

  @spec-1.7.1 @spec-1.7.3 @spec-2.4.1 @spec-5.3.1 @spec-5.2.3 @spec-2.1.1
  Scenario: Initializing loads the configuration and makes the provider READY
    Given a handler for PROVIDER_READY events on the client
    When the provider is registered
    Then the client's provider status becomes "READY"
    And the PROVIDER_READY handler runs with the provider's name
    And the App is live

  @spec-5.3.3
  Scenario: A handler added once the provider is ready runs at once
    Given the provider is registered and ready
    When a handler for PROVIDER_READY events is added on the client
    Then the PROVIDER_READY handler runs with the provider's name

  @spec-5.1.1 @spec-5.1.2 @feats-change
  Scenario: A change to a feature announces PROVIDER_CONFIGURATION_CHANGED naming it
    Given the provider is registered and ready
    And a handler for PROVIDER_CONFIGURATION_CHANGED events on the client
    When "Limit" is changed to answer "high" for everyone
    Then the PROVIDER_CONFIGURATION_CHANGED handler runs for "Limit" at its new version

  @spec-1.7.6 @spec-1.4.10
  Scenario: Evaluating before the first load answers PROVIDER_NOT_READY
    Given a feats App with the shop's features on Redis through a proxy
    And Redis does not answer
    When the provider is registered
    And the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "none"
    And the error code is "PROVIDER_NOT_READY"
    And the client's provider status becomes "ERROR"

  @spec-1.7.4 @spec-2.4.2.1 @spec-5.3.2 @spec-5.1.4 @spec-1.7.8
  Scenario: An initialization that loads nothing fails, and the provider is READY once Redis answers
    Given a feats App with the shop's features on Redis through a proxy
    And Redis refuses connections
    And a handler for PROVIDER_ERROR events on the client
    And a handler for PROVIDER_READY events on the client
    When the provider is registered
    Then the client's provider status becomes "ERROR"
    And the PROVIDER_ERROR handler runs with an error message
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "none"
    And the error code is "PROVIDER_NOT_READY"
    When Redis is reachable again
    Then the client's provider status becomes "READY"
    And the PROVIDER_READY handler runs
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "acme"
    And no error is reported

  @spec-1.7.5 @spec-1.7.7 @spec-1.4.10
  Scenario: An asyncio App its provider cannot start makes the provider FATAL
    Given the App is an asyncio App whose provider was made outside any event loop
    And a handler for PROVIDER_ERROR events on the client
    When the provider is set
    Then the client's provider status becomes "FATAL"
    And the PROVIDER_ERROR handler runs with an error message
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "none"
    And the error code is "PROVIDER_FATAL"

  @spec-2.5.1 @spec-2.5.2 @spec-1.6.1
  Scenario: Shutting down closes the App the provider owns
    Given the provider is registered and ready
    When the OpenFeature API shuts down
    Then the App is closed
    When the same provider is registered again
    Then the client's provider status becomes "READY"
    And the App is live

  @feats-stale @spec-5.1.1
  Scenario: An App whose owner closes it is STALE: the last configuration answers
    Given the provider is registered and ready
    And "PaymentProcessor" answers "premium" for everyone
    And a handler for PROVIDER_STALE events on the client
    When the App's owner closes it
    Then the client's provider status becomes "STALE"
    And the PROVIDER_STALE handler runs
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "premium"
    And the reason is "STALE"
