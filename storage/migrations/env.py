from __future__ import annotations

from alembic import context

from storage.db import make_engine
from storage.models import Base

config = context.config
database_url = config.attributes.get("database_url")


def run_migrations() -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
