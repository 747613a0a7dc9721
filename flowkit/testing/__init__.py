"""Public test doubles and conformance suites for flowkit's extension points."""
