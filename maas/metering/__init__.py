"""Usage metering: the usage store, the per-request charge, pricing, invoices and CloudEvents, reports."""
