# syntax=docker/dockerfile:1
# Build: docker build -t consentmail .
# Run:   docker run -p 8080:8080 -v consentmail-data:/data \
#          -e CONSENTMAIL_SECRET=$(openssl rand -hex 32) \
#          -e CONSENTMAIL_SMTP_URL='smtp://user:pass@relay.example.org:587?tls=starttls' \
#          -e CONSENTMAIL_BASE_URL=https://news.example.org consentmail

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/consentmail ./cmd/consentmail \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consentmail /usr/local/bin/consentmail
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV CONSENTMAIL_DATA_DIR=/data \
    CONSENTMAIL_HTTP_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/consentmail"]
CMD ["serve"]
