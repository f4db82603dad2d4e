Feature: Abnormal execution answers the caller's default with an error code
  The client never raises: every error below returns the default the caller passed, the
  reason ERROR, an error code and a message saying what went wrong.

  Background:
    Given a feats App with the shop's features
    And the provider is registered and ready

  @spec-1.4.8 @spec-1.4.9 @spec-1.4.10 @spec-1.4.13 @spec-2.2.7 @spec-2.3.3
  Scenario Outline: An unknown flag is FLAG_NOT_FOUND
    When the <type> flag "Nonexistent" is evaluated with the default <default>
    Then the value is <default>
    And the error code is "FLAG_NOT_FOUND"
    And there is no variant
    And the error message mentions "Nonexistent"

    Examples:
      | type    | default   |
      | boolean | true      |
      | string  | "uh-oh"   |
      | integer | 13        |
      | float   | 1.5       |
      | object  | {"a": 1}  |

  @spec-1.4.8 @spec-2.2.7 @spec-1.3.4
  Scenario Outline: A flag resolved as a type it does not answer is TYPE_MISMATCH
    Given "<feature>" answers "<implementation>" for everyone
    When the <type> flag "<feature>" is evaluated with the default <default>
    Then the value is <default>
    And the error code is "TYPE_MISMATCH"
    And the error message mentions "<why>"

    Examples:
      | type    | feature          | implementation | default | why                 |
      | boolean | PaymentProcessor | premium        | false   | not a boolean       |
      | string  | new_checkout     | enabled        | "x"     | boolean feature     |
      | integer | PaymentProcessor | premium        | 1       | declared to return  |
      | float   | Banner           | sale           | 0.5     | declared to return  |
      | object  | Limit            | high           | {}      | declared to return  |
      | object  | Receipt          | email          | {}      | PaperReceipt        |
      | object  | Widget           | messy          | {}      | returned            |

  @spec-1.4.8 @spec-1.4.13
  Scenario: An implementation that raises is a GENERAL error
    Given "Flaky" answers "broken" for everyone
    When the integer flag "Flaky" is evaluated with the default 5
    Then the value is 5
    And the error code is "GENERAL"
    And the error message mentions "the broken implementation broke"

  @feats-drift
  Scenario: Configuration naming an implementation this code lacks is an error, as feats reports drift
    Given another program configured "PaymentProcessor" with the implementation "stripe"
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the value is "none"
    And the error code is "GENERAL"
    And the error message mentions "configuration drift"

  Scenario: An implementation that needs inputs the provider cannot build is a GENERAL error
    Given the provider builds no inputs
    And "Limit" answers "high" for everyone
    When the integer flag "Limit" is evaluated with the default 3
    Then the value is 3
    And the error code is "GENERAL"
    And the error message mentions "FeatsProvider(inputs=...)"
