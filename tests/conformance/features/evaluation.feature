Feature: Typed resolution of feats features
  A flag key is a feature's name and the variant is the name of the implementation that
  answers. Strings answer that name, booleans answer boolean features, and integers, floats
  and objects answer what the chosen implementation returns where it is declared to return
  that type.

  Background:
    Given a feats App with the shop's features
    And the provider is registered and ready

  @spec-2.2.1 @spec-2.2.2.1 @spec-2.2.3 @spec-2.2.4 @spec-2.2.6 @spec-2.3.2 @spec-1.3.1.1
  @spec-1.4.1.1 @spec-1.4.3 @spec-1.4.6 @spec-1.4.7 @spec-1.4.12
  Scenario Outline: Each flag type resolves the configured implementation
    Given "<feature>" answers "<implementation>" for everyone
    When the <type> flag "<feature>" is evaluated with the default <default>
    Then the value is <value>
    And the variant is "<implementation>"
    And the reason is "STATIC"
    And no error is reported

    Examples:
      | type    | feature          | implementation | default | value                                              |
      | boolean | new_checkout     | enabled        | false   | true                                               |
      | string  | PaymentProcessor | premium        | "none"  | "premium"                                          |
      | integer | Limit            | high           | 1       | 100                                                |
      | float   | Discount         | half           | 0.1     | 0.5                                                |
      | object  | Banner           | sale           | {}      | {"title": "Sale", "percent": 20, "visible": true}  |

  @spec-1.4.7 @spec-2.2.3
  Scenario Outline: Zero values are answers like any other
    Given "<feature>" answers "<implementation>" for everyone
    When the <type> flag "<feature>" is evaluated with the default <default>
    Then the value is <value>
    And the variant is "<implementation>"
    And the reason is "STATIC"

    Examples:
      | type    | feature      | implementation | default | value |
      | boolean | new_checkout | disabled       | true    | false |
      | integer | Limit        | none           | 7       | 0     |
      | float   | Discount     | nothing        | 0.7     | 0.0   |
      | object  | Banner       | plain          | {"a": 1} | {}   |

  @spec-1.3.1.1 @spec-1.3.3.1
  Scenario Outline: The value-only methods return the same values
    Given "<feature>" answers "<implementation>" for everyone
    When the <type> value of "<feature>" is evaluated with the default <default>
    Then the value is <value>

    Examples:
      | type    | feature          | implementation | default | value      |
      | boolean | new_checkout     | enabled        | false   | true       |
      | string  | PaymentProcessor | aperture       | "none"  | "aperture" |
      | integer | Limit            | high           | 1       | 100        |
      | float   | Discount         | half           | 0.1     | 0.5        |
      | object  | Theme            | dark           | {}      | {"background": "black"} |

  @spec-1.4.5 @spec-2.2.9 @spec-2.2.10 @spec-1.4.14
  Scenario: Details name the flag and carry the configuration version
    Given "PaymentProcessor" answers "premium" for everyone
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the flag key is "PaymentProcessor"
    And the flag metadata holds the version of "PaymentProcessor"
    And the flag metadata explains "static premium"

  @spec-1.4.14.1
  Scenario: Flag metadata is immutable
    Given "PaymentProcessor" answers "premium" for everyone
    When the string flag "PaymentProcessor" is evaluated with the default "none"
    Then the flag metadata cannot be changed

  @spec-2.2.5 @feats-default
  Scenario Outline: With no configuration the default implementation answers
    When the <type> flag "<feature>" is evaluated with the default <default>
    Then the value is <value>
    And the variant is "<implementation>"
    And the reason is "DEFAULT"
    And the flag metadata holds no version
    And the flag metadata explains "no configuration"

    Examples:
      | type    | feature          | implementation | default | value            |
      | string  | PaymentProcessor | acme           | "none"  | "acme"           |
      | integer | Limit            | standard       | 1       | 10               |
      | object  | Theme            | light          | {}      | {"background": "white"} |

  @feats-default
  Scenario Outline: A boolean feature's own function answers for the context's inputs
    Given the context has "Plan" set to "<plan>"
    When the boolean flag "new_checkout" is evaluated with the default <default>
    Then the value is <value>
    And the variant is "default"
    And the reason is "DEFAULT"

    Examples:
      | plan | default | value |
      | beta | false   | true  |
      | free | true    | false |

  @feats-default
  Scenario: Without inputs the caller's default stands in for a boolean feature's own function
    Given the provider builds no inputs
    When the boolean flag "new_checkout" is evaluated with the default true
    Then the value is true
    And the variant is "default"
    And the reason is "DEFAULT"
    And the flag metadata explains "needs its inputs"

  Scenario: An implementation that takes no inputs is called without them
    Given the provider builds no inputs
    And "Theme" answers "dark" for everyone
    When the object flag "Theme" is evaluated with the default {}
    Then the value is {"background": "black"}
    And the variant is "dark"
