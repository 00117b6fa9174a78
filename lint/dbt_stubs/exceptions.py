"""dbt's `exceptions`: a compile error stops the lint with dbt's message."""


def raise_compiler_error(message):
    raise RuntimeError(message)
