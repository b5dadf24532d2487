//! Scenario-driven load and fault generator (in progress).
