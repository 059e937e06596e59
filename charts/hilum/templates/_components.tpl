{{/* The Deployments of the chart, by component name (PodDisruptionBudgets and NetworkPolicies use it). */}}
{{- define "hilum.deployments" -}}
{{- $names := list "cds" "dicom" "assembler" "triton" }}
{{- range $stage := list "ingestion" "inference" "priors" "reporting" "publishing" }}
{{- $names = append $names (printf "%s-api" $stage) }}
{{- $names = append $names (printf "%s-worker" $stage) }}
{{- end }}
{{- if .Values.pacsPull.enabled }}{{ $names = append $names "pacs-pull" }}{{ end }}
{{- toJson $names }}
{{- end }}
