//! Mapping tests of the Kubernetes connector.
