"""The store: SQLAlchemy models, engines and unit of work, Alembic migrations, set-based queries."""
