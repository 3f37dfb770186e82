"""The widgets of the Ladder app: each shows one view of the store and posts messages up."""
