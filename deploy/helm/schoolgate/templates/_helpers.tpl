{{/* The one image every container runs. */}}
{{- define "schoolgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* A file the chart cannot run without, with the way to give it. */}}
{{- define "schoolgate.file" -}}
{{- $value := index .root.Values .key -}}
{{- required (printf "give the %s file: --set-file %s=%s.yaml (docs/kubernetes.md)" .key .key .key) $value -}}
{{- end }}

{{/* Pod annotations that roll the pods when the identity settings or the settings change
(kustomize does this with a name hash). */}}
{{- define "schoolgate.checksums" -}}
checksum/identity: {{ include "schoolgate.file" (dict "root" . "key" "identity") | sha256sum }}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}
