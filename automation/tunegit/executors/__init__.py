"""Executors: where jobs run. One module per backend, registered by the site's `executor:`."""
