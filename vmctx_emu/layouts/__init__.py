"""The vocabulary of element types and fields, the declaration of every release, and the offsets derived from it."""
