"""Send the rows of the dbt model ``line_capi_payload`` to the LINE Conversion API.

The CLI (:mod:`sender.cli`) only parses options and prints. The work lives in small modules:

- :mod:`sender.settings`     configuration from environment variables / options, validated
- :mod:`sender.secret_env`   a secret from env NAME or from the file env NAME_FILE names
- :mod:`sender.file_modes`   files and folders readable by their owner only (personal data)
- :mod:`sender.dbt_private_files` the same for dbt, as a dbt-duckdb profile plugin
- :mod:`sender.database`     opening the DuckDB file with one-line errors, the ledger DDL
- :mod:`sender.pending_rows` streaming the rows not yet acknowledged, oldest first
- :mod:`sender.request_body` turning Arrow columns into request bodies without re-serializing
- :mod:`sender.line_client`  one HTTP request to LINE, classified; backoff
- :mod:`sender.tls`          the CA bundle, and what a certificate failure means
- :mod:`sender.ledger`       recording outcomes, runs, status counts
- :mod:`sender.push`         the push loop: batching, concurrency, retries, 400 bisection
- :mod:`sender.mock_server`  a LINE-compatible server for tests and rehearsals
- :mod:`sender.coverage`     reading the coverage table: identifiers and rejections per build
- :mod:`sender.report`       the self-contained HTML page of ``sender report``
- :mod:`sender.alerts`       one message to a webhook when a run needs a person
"""

__version__ = "0.1.0"
