"""Real servers on 127.0.0.1 that the tests talk to instead of remote services (importable as `servers`)."""
