"""`python -m hubcard`, which is also what `accelerate launch -m hubcard` runs."""

from hubcard.cli import main

main()
