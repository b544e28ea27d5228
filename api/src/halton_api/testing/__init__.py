"""Test support that ships with the cloud API (as ``halton_meter.testing`` does for the meter).

``factories`` makes control-plane rows through the real data-access functions and drives the pages like a
browser would; the API's tests and the cross-component tests use it. Nothing in the API imports it.
"""
