"""Test support that ships with the pipelines (as ``halton_meter.testing`` does for the meter).

``fake_billing`` serves the providers' documented billing APIs on 127.0.0.1; ``factories`` makes
control-plane and warehouse rows for the pipelines' tests. Nothing in the pipelines imports it.
"""
