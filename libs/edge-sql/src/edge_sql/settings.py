"""The database settings of the services that keep one (the registry and the monitor)."""

from typing import ClassVar

from edge_core.settings import EdgeSettings
from edge_sql import database_url


class DatabaseSettings(EdgeSettings):
    # SQLAlchemy URL (EDGE_DATABASE_URL); unset: the SQLite file <data_dir>/<database_file>.
    # A plain ``postgresql://`` URL is read as ``postgresql+psycopg://`` (the driver installed).
    database_url: str | None = None
    database_file: ClassVar[str]

    def sqlalchemy_url(self) -> str:
        return database_url(self.database_url, self.data_dir, self.database_file)
