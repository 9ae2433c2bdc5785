# livestyle service image (CPU). Serves the bundled ONNX models; torch is not installed unless asked.
#   docker build -t livestyle .
#   docker run -p 8000:8000 livestyle
# GPU: docker build --build-arg ORT_PACKAGE=onnxruntime-gpu==1.32.0 -t livestyle:gpu .
#      docker run --gpus all -p 8000:8000 livestyle:gpu
# Live DeepDream mode (adds torch + VGG19 weights): docker build --build-arg EXTRAS="[dream]" ...
# Learning your own paintings (POST /api/styles): --build-arg EXTRAS="[learn]", then run with photos to learn on,
#   -v ~/Pictures:/photos:ro -e LIVESTYLE_STYLES_PHOTOS=/photos (added styles live in the data volume below).
# WebRTC media flows over UDP between the browser and the container: on a remote host run with
# --network host or configure a TURN server (LIVESTYLE_ICE_SERVERS).
# It listens on 0.0.0.0: give it a token (-e LIVESTYLE_API_TOKEN=...) and a volume for the video jobs and added
# styles (-v livestyle-data:/home/livestyle/.local/share/livestyle); README "Deployment" lists the rest.
# Live streams on several workers (Ray Serve): --build-arg EXTRAS="[ray]", then run the image with
#   livestyle-serve --engine ray --replicas 3 [--address RAY_HEAD:6379] (README "Live streams on several workers").
# The page's in-browser runtime, packed from the npm registry (the pin of service/web_runtime.py; its integrity is
# checked again when it is unpacked below).
FROM node:20-slim AS web-runtime
WORKDIR /runtime
RUN npm pack onnxruntime-web@1.30.0 --silent

FROM python:3.11-slim

ARG ORT_PACKAGE=""
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIVESTYLE_HOST=0.0.0.0 LIVESTYLE_PORT=8000 LIVESTYLE_MODELS_DIR=/app/models

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
RUN pip install ".$EXTRAS" \
    && if [ -n "$ORT_PACKAGE" ]; then pip uninstall -y onnxruntime && pip install "$ORT_PACKAGE"; fi
COPY --from=web-runtime /runtime/onnxruntime-web-1.30.0.tgz /tmp/
RUN cd /tmp && python -m service.web_runtime install --tarball /tmp/onnxruntime-web-1.30.0.tgz \
    && rm /tmp/onnxruntime-web-1.30.0.tgz
COPY models ./models

RUN useradd --create-home livestyle
USER livestyle
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health')"
CMD ["livestyle-serve"]
