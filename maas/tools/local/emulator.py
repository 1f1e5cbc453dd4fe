"""moto in server mode on 127.0.0.1, standing in for DynamoDB, S3, SQS and SageMaker runtime.

The server handles one AWS request at a time. DynamoDB makes each request (a conditional write, a
transaction) atomic; moto's in-memory backend does not lock, so a threaded server could let two
concurrent conditional writes both pass. Serialising requests gives the local service and the tests
the same atomicity the real service has, so quota and exactly-once tests prove something.
"""

from __future__ import annotations

import copy
import logging
import threading

from maas.tables import ALL_TABLES, create_table_kwargs

REGION = "us-east-1"


class _TablesNotCopied:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend during one transaction: tables are not
    deep-copied (the rollback is item by item, below); everything else is."""

    @staticmethod
    def deepcopy(value, memo=None):
        from moto.dynamodb.models import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def lean_transactions() -> None:
    """Make moto's TransactWriteItems cost what it touches, not the whole table.

    moto deep-copies every table a transaction names, to roll back a cancelled one: time and memory grew with the
    table (maas serve grew ~12 MB per billed call under the old metering, and slowed 10x). Here the items the
    transaction names are snapshotted instead and put back on cancellation: the same all-or-nothing result.
    Safe because the emulator serves one request at a time. Idempotent."""
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend, "_maas_lean_transactions", False):
        return
    original = backend.transact_write_items

    def transact_write_items(self, transact_items):
        snapshots = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.get_table(op["TableName"])
            key = (
                op["Key"]
                if "Key" in op
                else {k: op["Item"][k] for k in (table.hash_key_attr, table.range_key_attr) if k}
            )
            current = self.get_item(op["TableName"], key)
            snapshots.append((op["TableName"], key, current.to_json()["Attributes"] if current else None))
        models.copy = _TablesNotCopied
        try:
            return original(self, transact_items)
        except Exception:  # cancelled, or invalid part-way: nothing of it may stay
            for table_name, key, attributes in reversed(snapshots):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise
        finally:
            models.copy = copy

    backend.transact_write_items = transact_write_items
    backend._maas_lean_transactions = True


def aws_env(endpoint_url: str) -> dict[str, str]:
    """Point every boto3 client at the emulator, never at AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def table_env() -> dict[str, str]:
    """Each table's env var -> its local name."""
    return {spec.env_var: spec.local_name for spec in ALL_TABLES}


class AwsEmulator:
    """A moto server bound to 127.0.0.1 on ``port`` (0: a free one), one request at a time."""

    def __init__(self, port: int = 0):
        self.port = port
        self.url = ""
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per AWS call
        lean_transactions()
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", self.port, app, threaded=False, request_handler=MotoRequestHandler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="maas-aws-emulator", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_tables(self) -> None:
        """Create every table of maas.tables under its local name (idempotent)."""
        ddb = self.client("dynamodb")
        existing = set(ddb.list_tables()["TableNames"])
        for spec in ALL_TABLES:
            if spec.local_name not in existing:
                ddb.create_table(**create_table_kwargs(spec))
