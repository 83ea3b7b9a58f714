# syntax=docker/dockerfile:1
# synckit-server image: docker build -t synckit-server:0.1.0 .
# Build stage: Maven on Eclipse Temurin JDK 25 (the code targets release 21; the JRE below runs it).
FROM maven:3.9-eclipse-temurin-25 AS build
WORKDIR /src
# Dependencies first, so source edits do not re-download them.
COPY pom.xml .
RUN mvn -B -q dependency:go-offline
COPY src ./src
# Produces target/synckit-server.jar (thin) and target/libs/ (its dependencies).
RUN mvn -B -DskipTests package

# Runtime: JRE only, non-root, just the jar and libs/.
FROM eclipse-temurin:25-jre
# curl is for the HEALTHCHECK below; installed explicitly rather than relying on the base image having it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 synckit \
 && useradd --system --uid 10001 --gid synckit --no-create-home --shell /usr/sbin/nologin synckit
# The server reads ./app.yaml from here: mount one at /app/app.yaml (Kubernetes: ConfigMap, subPath).
WORKDIR /app
COPY --from=build /src/target/synckit-server.jar /app/synckit-server.jar
COPY --from=build /src/target/libs /app/libs
USER 10001:10001
EXPOSE 8080
# Process liveness only; readiness (/health/ready) is for load balancers and Kubernetes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/live || exit 1
# Heap is 75 % of the container's memory limit; on OutOfMemoryError exit so the orchestrator restarts us.
# G1 is named because the JVM would pick the serial collector in a container with under 2 CPUs or 1792 MB;
# a fixed 64 MB young generation keeps each young pause short (9-19 ms against 21-36 ms with G1 sizing it
# itself) and gave the shortest broadcast tail on 2 cores (BENCHMARKS.md, "GC").
# `docker run IMAGE migrate` runs the schema migrations and exits.
ENTRYPOINT ["java", "-XX:+UseG1GC", "-Xmn64m", "-XX:MaxRAMPercentage=75", "-XX:+ExitOnOutOfMemoryError", "-jar", "/app/synckit-server.jar"]
CMD []
