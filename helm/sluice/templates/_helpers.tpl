{{/* Names, labels and pod-spec pieces every component shares. The binaries' flags are in
_flags.tpl, nowhere else. */}}

{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name. Node pod names (this plus "-origin-N" or "-edge-HASH-XXXXX")
are node ids, which must stay within 63 characters. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 30 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 30 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.component" -}}
{{- printf "%s-%s" (include "sluice.fullname" .root) .component -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels every pod of this release carries: the NetworkPolicies admit "cluster pods" by
them. */}}
{{- define "sluice.memberLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.useExternalEtcd" -}}
{{- if .Values.etcd.external.endpoints -}}true{{- end -}}
{{- end -}}

{{/* Secret names: supplied, or the chart's own. */}}
{{- define "sluice.relayCaSecret" -}}
{{- default (printf "%s-relay-ca" (include "sluice.fullname" .)) .Values.relayTls.existingSecret -}}
{{- end -}}
{{- define "sluice.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "sluice.fullname" .)) .Values.controlPlane.adminToken.existingSecret -}}
{{- end -}}
{{- define "sluice.playTokenSecret" -}}
{{- default (printf "%s-play-token" (include "sluice.fullname" .)) .Values.access.play.tokenSecret -}}
{{- end -}}

{{/* Volumes of the secrets every Sluice process may read (etcd password, play secret). */}}
{{- define "sluice.accessVolumes" -}}
{{- if .Values.etcd.external.auth.user }}
- name: etcd-auth
  secret:
    secretName: {{ .Values.etcd.external.auth.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- if .Values.access.play.privateApps }}
- name: play-token
  secret:
    secretName: {{ include "sluice.playTokenSecret" . }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "sluice.accessVolumeMounts" -}}
{{- if .Values.etcd.external.auth.user }}
- name: etcd-auth
  mountPath: /var/run/sluice/etcd-auth
  readOnly: true
{{- end }}
{{- if .Values.access.play.privateApps }}
- name: play-token
  mountPath: /var/run/sluice/play-token
  readOnly: true
{{- end }}
{{- end -}}

{{- define "sluice.hlsKeySecret" -}}
{{- default (printf "%s-hls-session-key" (include "sluice.fullname" .)) .Values.hlsSessionKey.existingSecret -}}
{{- end -}}

{{/* DNS name of the control plane's Service (the KEDA scaler's address). */}}
{{- define "sluice.controlPlaneHost" -}}
{{- printf "%s.%s.svc.%s" (include "sluice.component" (dict "root" . "component" "control-plane")) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* Restricted pod security for every Sluice container. */}}
{{- define "sluice.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "sluice.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Pod anti-affinity across nodes for one component: soft or hard. */}}
{{- define "sluice.antiAffinity" -}}
podAntiAffinity:
{{- if eq .root.Values.podAntiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "sluice.selectorLabels" . | nindent 10 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "sluice.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* The environment every node pod reads its own identity from. */}}
{{- define "sluice.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* terminationGracePeriodSeconds of a node pod: preStop sleep + drain deadline + margin.
Argument: the component's drainTimeoutSeconds, with root. */}}
{{- define "sluice.gracePeriod" -}}
{{- add .root.Values.lifecycle.preStopSeconds .drain .root.Values.lifecycle.graceMarginSeconds -}}
{{- end -}}

{{/* preStop: wait until the endpoint removal has reached load balancers and kube-proxy, so
no new client arrives after SIGTERM starts the node's drain. */}}
{{- define "sluice.preStop" -}}
preStop:
  exec:
    command: ["sleep", "{{ .Values.lifecycle.preStopSeconds }}"]
{{- end -}}

{{/* The init container that issues this pod's relay certificate (node id = pod name) with
the cluster CA, in the layout --tls-dir reads (ca.pem, NODE.pem, NODE.key). */}}
{{- define "sluice.certInit" -}}
- name: relay-cert
  image: {{ include "sluice.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["/bin/sh", "-ec"]
  args:
    - |
      cd /var/run/sluice/tls
      cp /var/run/sluice/ca/ca.pem ca.pem
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$POD_NAME.key" -subj "/CN=$POD_NAME" -out node.csr
      printf 'subjectAltName=DNS:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$POD_NAME" > node.ext
      openssl x509 -req -in node.csr -CA /var/run/sluice/ca/ca.pem -CAkey /var/run/sluice/ca/ca.key \
        -set_serial "0x$(openssl rand -hex 16)" -days {{ .Values.relayTls.certDays }} -extfile node.ext -out "$POD_NAME.pem"
      rm -f node.csr node.ext
      chmod 600 "$POD_NAME.key"
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
  securityContext:
    {{- include "sluice.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
  volumeMounts:
    - name: relay-ca
      mountPath: /var/run/sluice/ca
      readOnly: true
    - name: relay-tls
      mountPath: /var/run/sluice/tls
{{- end -}}

{{/* Volumes of a node pod; .component is origin or edge. */}}
{{- define "sluice.nodeVolumes" -}}
- name: relay-ca
  secret:
    secretName: {{ include "sluice.relayCaSecret" .root }}
    defaultMode: 0400
- name: relay-tls
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: hls-key
  secret:
    secretName: {{ include "sluice.hlsKeySecret" .root }}
    defaultMode: 0400
{{- if .root.Values.etcd.external.tls.enabled }}
- name: etcd-tls
  secret:
    secretName: {{ .root.Values.etcd.external.tls.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- if and (eq .component "edge") .root.Values.edge.tls.enabled }}
- name: https-tls
  secret:
    secretName: {{ .root.Values.edge.tls.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- with .root.Values.access.publish }}
{{- if and (eq $.component "origin") .keysSecret }}
- name: publish-keys
  secret:
    secretName: {{ .keysSecret }}
    defaultMode: 0400
{{- end }}
{{- if and (eq $.component "origin") .tokenSecret }}
- name: publish-token
  secret:
    secretName: {{ .tokenSecret }}
    defaultMode: 0400
{{- end }}
{{- end }}
{{- if .root.Values.access.quotas }}
- name: quotas
  configMap:
    name: {{ include "sluice.fullname" .root }}-quotas
{{- end }}
{{ include "sluice.accessVolumes" .root }}
{{- end -}}

{{- define "sluice.nodeVolumeMounts" -}}
- name: relay-tls
  mountPath: /var/run/sluice/tls
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: hls-key
  mountPath: /var/run/sluice/hls
  readOnly: true
{{- if .root.Values.etcd.external.tls.enabled }}
- name: etcd-tls
  mountPath: /var/run/sluice/etcd-tls
  readOnly: true
{{- end }}
{{- if and (eq .component "edge") .root.Values.edge.tls.enabled }}
- name: https-tls
  mountPath: /var/run/sluice/https
  readOnly: true
{{- end }}
{{- with .root.Values.access.publish }}
{{- if and (eq $.component "origin") .keysSecret }}
- name: publish-keys
  mountPath: /var/run/sluice/publish-keys
  readOnly: true
{{- end }}
{{- if and (eq $.component "origin") .tokenSecret }}
- name: publish-token
  mountPath: /var/run/sluice/publish-token
  readOnly: true
{{- end }}
{{- end }}
{{- if .root.Values.access.quotas }}
- name: quotas
  mountPath: /var/run/sluice/quotas
  readOnly: true
{{- end }}
{{ include "sluice.accessVolumeMounts" .root }}
{{- end -}}

{{/* Probes of a node on its own HTTP port: /healthz answers while the process serves,
/readyz only once it is started and until it drains. */}}
{{- define "sluice.nodeProbes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 1
{{- end -}}
