"""moto in server mode on 127.0.0.1, standing in for DynamoDB, S3, SQS and SageMaker runtime.

The server handles one AWS request at a time. DynamoDB makes each request (a conditional write, a
transaction) atomic; moto's in-memory backend does not lock, so a threaded server could let two
concurrent conditional writes both pass. Serialising requests gives the local service and the tests
the same atomicity the real service has, so quota and exactly-once tests prove something.
"""

from __future__ import annotations

import logging
import threading

from maas.tables import ALL_TABLES, create_table_kwargs

REGION = "us-east-1"


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
