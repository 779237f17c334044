//! Start-up configuration from the environment: what stops the server (exit
//! code 2, an error naming the variable) and what a variable changes.

use crate::support::start_with_env;

fn stops(vars: &[(&str, &str)], error: &str) {
    assert_eq!(
        start_with_env(vars),
        (Some(2), format!("connectors-server: configuration error: {error}")),
        "{vars:?}"
    );
}

/// `AWS_USE_DEFAULT_CHAIN` is a boolean like `GCP_USE_ADC`.
#[test]
fn aws_use_default_chain_must_be_true_or_false() {
    stops(
        &[("AWS_USE_DEFAULT_CHAIN", "yes")],
        "AWS_USE_DEFAULT_CHAIN: invalid value: provided string was not `true` or `false`",
    );
}
