{{/* Names, labels, images, connection settings and the one pod shape every Hilum process runs in. */}}

{{- define "hilum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hilum.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's resource name: <fullname>-<component>. Args: dict root component. */}}
{{- define "hilum.componentName" -}}
{{- printf "%s-%s" (include "hilum.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hilum.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hilum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hilum
{{- end }}

{{/* Labels that select one component's pods. Args: dict root component. */}}
{{- define "hilum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hilum.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels that select every pod of the release (the default-deny NetworkPolicy uses them). */}}
{{- define "hilum.releaseSelector" -}}
app.kubernetes.io/name: {{ include "hilum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hilum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hilum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: repository:tag, or repository:tag@digest. Args: dict image defaultTag. */}}
{{- define "hilum.imageRef" -}}
{{- $tag := default .defaultTag .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{- define "hilum.image" -}}
{{- include "hilum.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/* Where Redis and PostgreSQL are: in the chart or external. */}}
{{- define "hilum.redisHost" -}}
{{- if .Values.redis.enabled }}{{ include "hilum.componentName" (dict "root" . "component" "redis") }}{{ else }}{{ .Values.externalRedis.host }}{{ end }}
{{- end }}
{{- define "hilum.redisPort" -}}
{{- if .Values.redis.enabled }}6379{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}
{{- define "hilum.redisSecret" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.auth.existingSecret }}{{ else }}{{ .Values.externalRedis.existingSecret }}{{ end }}
{{- end }}
{{- define "hilum.redisPasswordKey" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.auth.passwordKey }}{{ else }}{{ .Values.externalRedis.passwordKey }}{{ end }}
{{- end }}
{{- define "hilum.databaseHost" -}}
{{- if .Values.postgresql.enabled }}{{ include "hilum.componentName" (dict "root" . "component" "postgresql") }}{{ else }}{{ .Values.externalDatabase.host }}{{ end }}
{{- end }}
{{- define "hilum.databasePort" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.externalDatabase.port }}{{ end }}
{{- end }}

{{/*
The connection URLs, composed from the password in a Secret with Kubernetes' $(VAR) expansion, so no
password is ever in a manifest or ConfigMap. Passwords must be URL-safe (e.g. `openssl rand -hex 24`).
*/}}
{{- define "hilum.connectionEnv" -}}
{{ include "hilum.referencesEnv" . | trim }}
- name: HILUM_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hilum.redisSecret" . }}
      key: {{ include "hilum.redisPasswordKey" . }}
- name: HILUM_REDIS__URL
  value: {{ printf "%s://:$(HILUM_REDIS_PASSWORD)@%s:%s/%v" (ternary "rediss" "redis" (and (not .Values.redis.enabled) .Values.externalRedis.tls)) (include "hilum.redisHost" .) (include "hilum.redisPort" .) (ternary 0 .Values.externalRedis.database .Values.redis.enabled) | quote }}
{{ include "hilum.databaseEnv" . | trim }}
{{- end }}

{{/* The key of the study and patient references (HMAC), from its Secret: every Hilum process needs the same. */}}
{{- define "hilum.referencesEnv" -}}
- name: HILUM_REFERENCES__KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.config.references.existingSecret }}
      key: {{ .Values.config.references.secretKey }}
{{- end }}

{{- define "hilum.databaseEnv" -}}
{{- $db := .Values.externalDatabase }}
{{- $user := ternary .Values.postgresql.auth.username $db.username .Values.postgresql.enabled }}
{{- $name := ternary .Values.postgresql.auth.database $db.database .Values.postgresql.enabled }}
{{- $ssl := ternary "disable" $db.sslmode .Values.postgresql.enabled }}
- name: HILUM_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ ternary .Values.postgresql.auth.existingSecret $db.existingSecret .Values.postgresql.enabled }}
      key: {{ ternary .Values.postgresql.auth.passwordKey $db.passwordKey .Values.postgresql.enabled }}
- name: HILUM_DATABASE__URL
  value: {{ printf "postgresql+psycopg://%s:$(HILUM_DATABASE_PASSWORD)@%s:%s/%s?sslmode=%s" $user (include "hilum.databaseHost" .) (include "hilum.databasePort" .) $name $ssl | quote }}
{{- end }}

{{/* Schema check before a process starts: waits for the migration Job's work. */}}
{{- define "hilum.waitForSchema" -}}
- name: wait-for-schema
  image: {{ include "hilum.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [db, wait, --timeout, "900"]
  env:
    {{- include "hilum.databaseEnv" . | trim | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.initResources | nindent 4 }}
  volumeMounts:
    - {name: tmp, mountPath: /tmp}
{{- end }}

{{/*
Probes per kind of process. Args: dict root kind port readinessService.
grpc: startup and liveness ask the overall service "" (the process serves); readiness asks readinessService when
given (inference: its service is NOT_SERVING while Triton lacks a model), so a broken model unreadies the pod but
never restarts it.
*/}}
{{- define "hilum.probes" -}}
{{- if eq .kind "grpc" }}
startupProbe:
  grpc: {port: {{ .root.Values.grpc.healthPort }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  grpc: {port: {{ .root.Values.grpc.healthPort }}}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  {{- if .readinessService }}
  grpc: {port: {{ .root.Values.grpc.healthPort }}, service: {{ .readinessService | quote }}}
  {{- else }}
  grpc: {port: {{ .root.Values.grpc.healthPort }}}
  {{- end }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- else if eq .kind "heartbeat" }}
{{- /* The process touches the file every 10 s while its main loop runs; older than 60 s: stuck. */}}
{{- $check := list "sh" "-c" "test $(( $(date +%s) - $(stat -c %Y /tmp/hilum-heartbeat) )) -lt 60" }}
startupProbe:
  exec:
    command:
      {{- toYaml $check | nindent 6 }}
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  exec:
    command:
      {{- toYaml $check | nindent 6 }}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  exec:
    command:
      {{- toYaml $check | nindent 6 }}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- else if eq .kind "http" }}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- else if eq .kind "tcp" }}
startupProbe:
  tcpSocket: {port: {{ .port }}}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  tcpSocket: {port: {{ .port }}}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  tcpSocket: {port: {{ .port }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- else }}
{{- fail (printf "unknown probe kind %s" .kind) }}
{{- end }}
{{- end }}

{{/* Spreads a component's replicas over nodes. Args: dict root component. */}}
{{- define "hilum.scheduling" -}}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "hilum.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end }}

{{/*
One Hilum process as a Deployment. Args (dict):
  root        the chart context
  component   e.g. "inference-worker"
  args        the `hilum` arguments, e.g. (list "worker" "inference")
  probe       grpc | heartbeat | http | tcp ; probePort for tcp ; readinessService: the gRPC service readiness asks
  ports       list of (dict name port)
  replicas    a number, or nil when an autoscaler owns it
  resources   the container's requests and limits
  roles       NetworkPolicy roles: any of db redis triton external
  env         extra env entries (list of dicts)
  volumes     extra volumes / volumeMounts (lists of dicts)
  multiproc   true: Prometheus multiprocess directory (Celery prefork, several uvicorn workers)
  httpMetrics true: the process serves /metrics on its own HTTP port (the CDS app), not on metrics.port
  modelRepository  true: mounts the model repository PVC where Triton's comes from one
*/}}
{{- define "hilum.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "hilum.componentName" . }}
  labels:
    {{- include "hilum.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not (kindIs "invalid" .replicas) }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "hilum.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "hilum.selectorLabels" . | nindent 8 }}
        app.kubernetes.io/part-of: hilum
        hilum.io/metrics: "true"
        {{- range .roles }}
        hilum.io/{{ . }}-client: "true"
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "hilum.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 60
      {{- include "hilum.scheduling" . | trim | nindent 6 }}
      initContainers:
        {{- include "hilum.waitForSchema" $root | nindent 8 }}
      containers:
        - name: hilum
          image: {{ include "hilum.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "hilum.fullname" $root }}
          env:
            - name: OTEL_SERVICE_NAME
              value: hilum-{{ .component }}
            {{- include "hilum.connectionEnv" $root | trim | nindent 12 }}
            {{- if .multiproc }}
            - name: PROMETHEUS_MULTIPROC_DIR
              value: /run/hilum-metrics
            {{- end }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            {{- if not .httpMetrics }}
            - {name: metrics, containerPort: {{ $v.metrics.port }}, protocol: TCP}
            {{- end }}
            {{- range .ports }}
            - {name: {{ .name }}, containerPort: {{ .port }}, protocol: TCP}
            {{- end }}
          {{- include "hilum.probes" (dict "root" $root "kind" .probe "port" .probePort "readinessService" .readinessService) | trim | nindent 10 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: data, mountPath: /var/lib/hilum}
            {{- if .multiproc }}
            - {name: prometheus, mountPath: /run/hilum-metrics}
            {{- end }}
            {{- if and .modelRepository (eq $v.triton.modelRepository.source "pvc") }}
            - name: model-repository
              mountPath: /opt/hilum/model_repository
              readOnly: true
              {{- with $v.triton.modelRepository.subPath }}
              subPath: {{ . }}
              {{- end }}
            {{- end }}
            {{- with .volumes }}{{ with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}{{ end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: 1Gi}
        - name: data
          persistentVolumeClaim:
            claimName: {{ default (include "hilum.componentName" (dict "root" $root "component" "data")) $v.persistence.existingClaim }}
        {{- if .multiproc }}
        - name: prometheus
          emptyDir: {sizeLimit: 64Mi}
        {{- end }}
        {{- if and .modelRepository (eq $v.triton.modelRepository.source "pvc") }}
        - name: model-repository
          persistentVolumeClaim:
            claimName: {{ $v.triton.modelRepository.existingClaim }}
            readOnly: true
        {{- end }}
        {{- with .volumes }}{{ with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}{{ end }}
{{- end }}

{{/*
A TLS Secret (tls.crt, tls.key, ca.crt) mounted at /etc/hilum/<name> and named by a settings section's
TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE variables; env, mounts and volumes are empty without a Secret.
Args: dict secret name section ("GRPC", "DICOM") env (more entries, when there is a Secret).
*/}}
{{- define "hilum.tlsFiles" -}}
{{- if .secret }}
{{- $dir := printf "/etc/hilum/%s" .name }}
env:
  - {name: HILUM_{{ .section }}__TLS_CERT_FILE, value: {{ $dir }}/tls.crt}
  - {name: HILUM_{{ .section }}__TLS_KEY_FILE, value: {{ $dir }}/tls.key}
  - {name: HILUM_{{ .section }}__TLS_CA_FILE, value: {{ $dir }}/ca.crt}
  {{- with .env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
mounts:
  - {name: {{ .name }}, mountPath: {{ $dir }}, readOnly: true}
volumes:
  - name: {{ .name }}
    secret: {secretName: {{ .secret }}, defaultMode: 0440}
{{- else }}
env: []
mounts: []
volumes: []
{{- end }}
{{- end }}

{{/* The gRPC TLS Secret, mounted where HILUM_GRPC__TLS_* point, and the bearer token from its Secret. */}}
{{- define "hilum.grpcTls" -}}
{{- $env := list (dict "name" "HILUM_GRPC__TLS_REQUIRE_CLIENT_CERT" "value" (toString .Values.grpc.tls.requireClientCert)) }}
{{- with .Values.grpc.auth.existingSecret }}
{{- $env = append $env (dict "name" "HILUM_GRPC__BEARER_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.grpc.auth.secretKey))) }}
{{- end }}
{{- include "hilum.tlsFiles" (dict "secret" .Values.grpc.tls.existingSecret "name" "grpc-tls" "section" "GRPC" "env" $env) }}
{{- end }}

{{/*
"true" when the stages' gRPC service ports listen beyond the pod: they carry PHI, so only with TLS and a bearer
token or client certificates. Otherwise they listen on the pod's loopback and only the health port is reachable.
*/}}
{{- define "hilum.grpcExposed" -}}
{{- if and .Values.grpc.tls.existingSecret (or .Values.grpc.auth.existingSecret .Values.grpc.tls.requireClientCert) }}true{{ else }}false{{ end }}
{{- end }}

{{/* Settings errors that the schema cannot express. */}}
{{- define "hilum.validate" -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.host) }}
{{- fail "externalDatabase.host is required when postgresql.enabled is false" }}
{{- end }}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.existingSecret) }}
{{- fail "externalDatabase.existingSecret (the database password) is required when postgresql.enabled is false" }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.host) }}
{{- fail "externalRedis.host is required when redis.enabled is false" }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.existingSecret) }}
{{- fail "externalRedis.existingSecret (the Redis password) is required when redis.enabled is false" }}
{{- end }}
{{- if and (eq .Values.triton.modelRepository.source "pvc") (not .Values.triton.modelRepository.existingClaim) }}
{{- fail "triton.modelRepository.existingClaim is required when triton.modelRepository.source is pvc" }}
{{- end }}
{{- if and (eq .Values.triton.modelConfigName "gpu") (not .Values.triton.gpu.enabled) }}
{{- fail "triton.modelConfigName gpu needs triton.gpu.enabled (or use modelConfigName cpu)" }}
{{- end }}
{{- if le (int .Values.config.queue.visibilityTimeoutS) (int .Values.config.queue.taskTimeLimitS) }}
{{- fail "config.queue.visibilityTimeoutS must exceed config.queue.taskTimeLimitS" }}
{{- end }}
{{- end }}

{{/* What publishing needs beyond the common pod: the FHIR server's token or key, MLLP's TLS files. */}}
{{- define "hilum.publishingExtras" -}}
{{- $f := .Values.config.publish.fhirServer }}
{{- $mllp := .Values.config.publish.mllp }}
env:
  {{- if $f.bearerTokenSecret.name }}
  - name: HILUM_PUBLISH__FHIR_SERVER__BEARER_TOKEN
    valueFrom:
      secretKeyRef: {name: {{ $f.bearerTokenSecret.name }}, key: {{ $f.bearerTokenSecret.key }}}
  {{- end }}
  {{- if $f.privateKeySecret.name }}
  - {name: HILUM_PUBLISH__FHIR_SERVER__PRIVATE_KEY_FILE, value: /etc/hilum/fhir-key/{{ $f.privateKeySecret.key }}}
  {{- end }}
  {{- if $mllp.tlsSecret }}
  - {name: HILUM_PUBLISH__MLLP__TLS_CA_FILE, value: /etc/hilum/mllp-tls/ca.crt}
  {{- end }}
mounts:
  {{- if $f.privateKeySecret.name }}
  - {name: fhir-key, mountPath: /etc/hilum/fhir-key, readOnly: true}
  {{- end }}
  {{- if $mllp.tlsSecret }}
  - {name: mllp-tls, mountPath: /etc/hilum/mllp-tls, readOnly: true}
  {{- end }}
volumes:
  {{- if $f.privateKeySecret.name }}
  - name: fhir-key
    secret: {secretName: {{ $f.privateKeySecret.name }}, defaultMode: 0440}
  {{- end }}
  {{- if $mllp.tlsSecret }}
  - name: mllp-tls
    secret: {secretName: {{ $mllp.tlsSecret }}, defaultMode: 0440}
  {{- end }}
{{- end }}

{{/* What priors needs beyond the common pod: its FHIR server's token or key. */}}
{{- define "hilum.priorsExtras" -}}
{{- $f := .Values.config.priors.fhirServer }}
env:
  {{- if $f.bearerTokenSecret.name }}
  - name: HILUM_PRIORS__FHIR_SERVER__BEARER_TOKEN
    valueFrom:
      secretKeyRef: {name: {{ $f.bearerTokenSecret.name }}, key: {{ $f.bearerTokenSecret.key }}}
  {{- end }}
  {{- if $f.privateKeySecret.name }}
  - {name: HILUM_PRIORS__FHIR_SERVER__PRIVATE_KEY_FILE, value: /etc/hilum/priors-fhir-key/{{ $f.privateKeySecret.key }}}
  {{- end }}
mounts:
  {{- if $f.privateKeySecret.name }}
  - {name: priors-fhir-key, mountPath: /etc/hilum/priors-fhir-key, readOnly: true}
  {{- end }}
volumes:
  {{- if $f.privateKeySecret.name }}
  - name: priors-fhir-key
    secret: {secretName: {{ $f.privateKeySecret.name }}, defaultMode: 0440}
  {{- end }}
{{- end }}

{{/* A HorizontalPodAutoscaler on CPU for a door. Args: dict root component autoscaling. */}}
{{- define "hilum.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "hilum.componentName" . }}
  labels:
    {{- include "hilum.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "hilum.componentName" . }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
