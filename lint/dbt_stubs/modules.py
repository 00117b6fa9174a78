"""dbt's `modules`: the Python modules dbt lends its templates."""

import datetime  # noqa: F401
import re  # noqa: F401

import pytz  # noqa: F401
