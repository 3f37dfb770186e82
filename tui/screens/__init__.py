"""The screens of the Ladder app, the views they show, and the store reads that fill them."""
