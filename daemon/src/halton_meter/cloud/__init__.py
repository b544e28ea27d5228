"""The meter's link to Halton Meter Cloud: pairing, credentials, the sync worker and its states.

Off by default (``[cloud] enabled = false``); nothing leaves the laptop until ``halton-meter cloud
connect`` is approved in the browser. Modules:

* :mod:`.client` - the HTTP calls to the cloud API and what their answers mean;
* :mod:`.credentials` - ``cloud-credentials.json`` and ``cloud.key`` (0600), the Fernet mirror;
* :mod:`.config_table` - rewriting only the ``[cloud]`` table of ``config.toml``;
* :mod:`.state` - the ``cloud_state`` row and the four states shown by ``cloud status``;
* :mod:`.link` - what pairing writes and what disconnecting wipes;
* :mod:`.pairing` - the code / long-poll dance;
* :mod:`.sync` - one pass of batches (gzip, byte cap, 413 halving, 422 bisection);
* :mod:`.worker` - the background thread that runs passes with backoff;
* :mod:`.supervisor` - starts and stops the worker inside the daemon, serves the loopback routes;
* :mod:`.loopback` - who may call the loopback ``/v1/cloud/*`` routes (origin, Host, peer).
"""
