"""``python -m sender`` runs the same CLI as the ``sender`` console script."""

from sender.cli import main

if __name__ == "__main__":
    main()
