"""The admin service: a FastAPI app (REST API and server-rendered pages) for the people who
run the filter."""
