"""The REST API (FastAPI): thin routes over crmsync.crm services, problem+json errors."""
