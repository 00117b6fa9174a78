"""Send the rows of the dbt model ``line_capi_payload`` to the LINE Conversion API.

The CLI (:mod:`sender.cli`) only parses options and prints; the work lives in small modules,
each listed with what it does in docs/development.md ("The sender").
"""

__version__ = "0.2.0.dev0"
