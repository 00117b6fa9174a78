"""``python -m sender`` runs the same CLI as the ``sender`` console script."""

from sender.cli import app

if __name__ == "__main__":
    app(prog_name="sender")
