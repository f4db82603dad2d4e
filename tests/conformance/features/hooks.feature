Feature: Hooks see what the provider resolved
  Background:
    Given a feats App with the shop's features
    And the provider is registered and ready
    And a hook on the client

  @spec-4.3.6 @spec-4.3.8
  Scenario: Before, after and finally hooks run around a resolution and see its details
    Given "PaymentProcessor" answers "premium" for everyone
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the hook stages ran in the order "before, after, finally"
    And the after and finally hooks saw the variant "premium" and the reason "STATIC"

  @spec-4.3.7 @spec-4.3.8
  Scenario: An error resolution runs the error hook, and finally sees the error code
    When the integer flag "PaymentProcessor" is evaluated with the default 1
    Then the hook stages ran in the order "before, error, finally"
    And the finally hook saw the error code "TYPE_MISMATCH"
