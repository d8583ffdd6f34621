# lockgate gateway / worker image. Engines run in their own images (see docker-compose.yml profiles).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY routing ./routing
COPY backends ./backends
COPY dispatch ./dispatch
COPY observability ./observability
COPY loadtest ./loadtest
RUN pip install --no-cache-dir . && useradd --uid 10001 lockgate
USER lockgate
EXPOSE 8000
ENTRYPOINT ["lockgate"]
CMD ["serve", "--host", "0.0.0.0"]
