"""Test support that ships with the meter (as mitmproxy ships ``mitmproxy.test``).

``factories`` builds the providers' documented response payloads; ``fake_providers`` serves them from
real HTTP(S) servers on 127.0.0.1. The meter's tests, the cross-component tests and the benchmarks use
them; nothing in the meter itself imports this package.
"""
