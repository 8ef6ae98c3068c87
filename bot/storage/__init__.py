"""SQL storage: tables, the database handle with its migrations, and the repositories over them."""
