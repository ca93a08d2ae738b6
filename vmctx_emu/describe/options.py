"""How a count is spelled where a user gives it: the CLI's option, which `infer` and `versions` text name too.

Kept apart from the renderers' other words so the CLI's parser takes it without their imports.
"""

__all__ = ["count_option"]


def count_option(count_name):
    """The option of a Rust count: num_runtime_post_returns -> post-returns, instances for component instances."""
    option = count_name.removeprefix("num_").removeprefix("runtime_").replace("_", "-")
    return "instances" if option == "component-instances" else option
