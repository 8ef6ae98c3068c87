"""Dialog graphs: flows of nodes and transitions loaded from YAML, validated at load, stepped at run time."""
