FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY router ./router
COPY channels ./channels
COPY eventstore ./eventstore
COPY policies ./policies
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --uid 10001 router \
    && mkdir -p /var/lib/router && chown router /var/lib/router
USER router

EXPOSE 8080
# DATABASE_URL must be set: the image does not run the embedded PostgreSQL.
CMD ["contact-router", "serve", "--host", "0.0.0.0", "--port", "8080", "--demo"]
