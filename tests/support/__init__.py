"""Test helpers shared by the suites: synthetic OCI images pushed through the distribution API."""
