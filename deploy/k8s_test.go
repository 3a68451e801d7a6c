package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
	"github.com/replaykit/replay/pipeline"
)

// k8sDir holds the kustomize base and overlays.
const k8sDir = "k8s"

// secretName is the Secret the Deployment reads credentials from; it is
// created by the operator (docs/operations.md), not shipped.
const secretName = "replay-credentials"

// kinds maps apiVersion/kind to the Kubernetes API type a manifest of that
// kind is decoded into. A kind not listed is an error.
var kinds = map[string]func() any{
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// decodeStrict decodes every YAML document in raw into its Kubernetes API
// type. Unknown and duplicate fields, wrong types and unknown kinds are
// errors.
func decodeStrict(raw []byte) ([]any, error) {
	var objs []any
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected kind %s %s", i, tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
}

// kustomizations returns every directory under deploy/k8s with a
// kustomization.yaml.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 2 {
		t.Fatalf("found kustomizations %q; want the base and at least one overlay", dirs)
	}
	return dirs
}

// TestManifestsDecodeStrictly decodes every kustomization strictly with
// kustomize's types and every manifest it lists with the Kubernetes API
// types, and checks that every YAML file in the directory is one of them
// or a file a generator reads.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var k kusttypes.Kustomization
			if err := yaml.UnmarshalStrict(raw, &k); err != nil {
				t.Fatalf("kustomization.yaml: %v", err)
			}
			var manifests, generated []string
			for _, r := range k.Resources {
				if st, err := os.Stat(filepath.Join(dir, r)); err != nil {
					t.Errorf("resource %s: %v", r, err)
				} else if !st.IsDir() {
					manifests = append(manifests, r)
				}
			}
			for _, p := range k.Patches {
				if p.Path != "" {
					manifests = append(manifests, p.Path)
				}
			}
			for _, g := range k.ConfigMapGenerator {
				generated = append(generated, g.FileSources...)
			}
			for _, m := range manifests {
				raw, err := os.ReadFile(filepath.Join(dir, m))
				if err != nil {
					t.Error(err)
					continue
				}
				objs, err := decodeStrict(raw)
				if err != nil {
					t.Errorf("%s: %v", m, err)
				} else if len(objs) == 0 {
					t.Errorf("%s: no manifest in it", m)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				name := e.Name()
				if e.IsDir() || name == "kustomization.yaml" || filepath.Ext(name) != ".yaml" {
					continue
				}
				if !slices.Contains(manifests, name) && !slices.Contains(generated, name) {
					t.Errorf("%s is not used by %s/kustomization.yaml", name, dir)
				}
			}
		})
	}
}

// rendered is the output of one kustomize build, decoded.
type rendered struct {
	dir         string
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	accounts    map[string]*corev1.ServiceAccount
}

// render builds the kustomization in dir with kustomize's library, as
// `kubectl kustomize dir` does, and decodes the output strictly.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, out)
	}
	r := rendered{dir: dir, configMaps: map[string]*corev1.ConfigMap{}, accounts: map[string]*corev1.ServiceAccount{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			r.deployments = append(r.deployments, o)
		case *corev1.Service:
			r.services = append(r.services, o)
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *corev1.ConfigMap:
			r.configMaps[o.Namespace+"/"+o.Name] = o
		case *corev1.ServiceAccount:
			r.accounts[o.Namespace+"/"+o.Name] = o
		case *corev1.Secret:
			t.Errorf("kustomize build %s has Secret %s: credentials are created by the operator, not kept in the repository", dir, o.Name)
		}
	}
	if len(r.deployments) != 1 || len(r.services) == 0 || len(r.pdbs) == 0 {
		t.Fatalf("kustomize build %s: %d Deployments, %d Services, %d PodDisruptionBudgets; want one Deployment with a Service and a PodDisruptionBudget",
			dir, len(r.deployments), len(r.services), len(r.pdbs))
	}
	return r
}

// TestKustomizationsRender renders the base and every overlay and checks
// each against the binary: its configuration, admin routes, shutdown
// sequence and memory budgets.
func TestKustomizationsRender(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			r := render(t, dir)
			d := r.deployments[0]
			c := replayContainer(t, d)
			cfg, cfgFile, environ := deploymentConfig(t, r, d, c)
			checkPorts(t, r, d, c, cfg)
			checkProbes(t, c, cfg)
			checkShutdown(t, d, cfg)
			checkMemory(t, c, cfg)
			checkSecurity(t, r, d, c)
			checkSelectors(t, r, d)
			t.Run("binary", func(t *testing.T) { checkWithBinary(t, c, cfgFile, environ) })
		})
	}
}

func replayContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want the replay container only", d.Name, len(cs))
	}
	c := cs[0]
	if len(c.Command) > 0 {
		t.Errorf("container %s sets command %q; the image's ENTRYPOINT is the replay binary, give args only", c.Name, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("container %s args %q, want replay run …", c.Name, c.Args)
	}
	return c
}

// placeholder is the value the test gives the Secret key: something a
// validator accepts (no whitespace) and the test can find again.
func placeholder(key string) string { return "secret-" + key }

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// containerEnv returns the environment the kubelet would give c, in order:
// literal values with $(VAR) references to earlier variables expanded,
// Secret keys as placeholders, the pod name for metadata.name. It returns
// the Secret keys read too.
func containerEnv(t *testing.T, c corev1.Container) (environ []string, secretKeys []string) {
	t.Helper()
	values := map[string]string{}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = envRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				name := envRef.FindStringSubmatch(ref)[1]
				if val, ok := values[name]; ok {
					return val
				}
				t.Errorf("env %s: %s refers to a variable not defined before it; the kubelet would pass it literally", e.Name, ref)
				return ref
			})
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secretName {
				t.Errorf("env %s reads Secret %q, want %q (the one docs/operations.md creates)", e.Name, ref.Name, secretName)
			}
			if ref.Optional != nil && *ref.Optional {
				t.Errorf("env %s: Secret key %s is optional; a missing credential should stop the pod from starting", e.Name, ref.Key)
			}
			secretKeys = append(secretKeys, ref.Key)
			v = placeholder(ref.Key)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = "replay-7d9f8b6c5d-x2k4q"
		default:
			t.Fatalf("env %s: unexpected valueFrom %+v", e.Name, e.ValueFrom)
		}
		values[e.Name] = v
		environ = append(environ, e.Name+"="+v)
	}
	return environ, secretKeys
}

// deploymentConfig finds the file `replay run --config` reads in the
// container's mounts, checks that the ConfigMap key it comes from exists,
// and loads it with config.Load and the container's environment, as the
// binary would. It returns the configuration, the file written to a
// temporary directory, and the environment.
func deploymentConfig(t *testing.T, r rendered, d *appsv1.Deployment, c corev1.Container) (config.Config, string, []string) {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container args %q have no --config FILE", c.Args)
	}
	path := c.Args[i+1]
	var mount *corev1.VolumeMount
	for j, m := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			mount = &c.VolumeMounts[j]
		}
	}
	if mount == nil {
		t.Fatalf("--config %s is in no volume mount", path)
	}
	key := strings.TrimPrefix(path, strings.TrimSuffix(mount.MountPath, "/")+"/")
	if mount.SubPath != "" {
		t.Fatalf("volume mount %s uses subPath: ConfigMap updates would not reach the pod", mount.Name)
	}
	var cmName string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == mount.Name && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
			for _, it := range v.ConfigMap.Items {
				if it.Path == key {
					key = it.Key
				}
			}
		}
	}
	if cmName == "" {
		t.Fatalf("--config %s: volume %s is not a ConfigMap", path, mount.Name)
	}
	cm, ok := r.configMaps[d.Namespace+"/"+cmName]
	if !ok {
		t.Fatalf("volume %s refers to ConfigMap %s, which the build does not have", mount.Name, cmName)
	}
	data, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s (--config %s); keys: %v", cmName, key, path, slices.Sorted(maps.Keys(cm.Data)))
	}

	environ, secretKeys := containerEnv(t, c)
	file := filepath.Join(t.TempDir(), "replay.yaml")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, environ, nil)
	if err != nil {
		t.Fatalf("replay.yaml of ConfigMap %s with the Deployment's environment: %v", cmName, err)
	}

	// Every REPLAY_* variable names a field: a misspelt one would be
	// ignored without a word.
	used := map[string]bool{}
	for _, o := range config.EnvOverrides(environ) {
		used[o[2]] = true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.EnvPrefix) && !used[name] {
			t.Errorf("env %s names no configuration field", name)
		}
	}
	// The credentials reach their fields, and the catalog credential adds
	// to the file's catalog properties instead of replacing them.
	fileOnly, err := config.Load(file, nil, []string{"admin.token=x", "source.kafka.sasl.username=x", "source.kafka.sasl.password=x"})
	if err != nil {
		t.Fatalf("replay.yaml without the environment: %v", err)
	}
	for k, v := range fileOnly.Sink.Catalog.Properties {
		if cfg.Sink.Catalog.Properties[k] != v {
			t.Errorf("sink.catalog.properties.%s = %q with the Deployment's environment, %q in the file: the environment dropped it",
				k, cfg.Sink.Catalog.Properties[k], v)
		}
	}
	fromSecret := map[string]string{
		"admin.token":                        cfg.Admin.Token,
		"source.kafka.sasl.username":         cfg.Source.Kafka.SASL.Username,
		"source.kafka.sasl.password":         cfg.Source.Kafka.SASL.Password,
		"sink.catalog.properties.credential": cfg.Sink.Catalog.Properties["credential"],
	}
	for field, got := range fromSecret {
		if !strings.HasPrefix(got, "secret-") || !slices.Contains(secretKeys, strings.TrimPrefix(got, "secret-")) {
			t.Errorf("%s = %q: want it from the Secret %s", field, got, secretName)
		}
	}
	if !slices.Contains(secretKeys, "s3-access-key-id") || !slices.Contains(secretKeys, "s3-secret-access-key") {
		t.Errorf("the S3 keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) are not read from the Secret; got keys %q", secretKeys)
	}
	checkDocumentedSecret(t, secretKeys)
	return cfg, file, environ
}

// checkDocumentedSecret checks that docs/operations.md creates the Secret
// with every key the Deployment reads.
func checkDocumentedSecret(t *testing.T, keys []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if !strings.Contains(doc, "create secret generic "+secretName) {
		t.Errorf("docs/operations.md does not show how to create the Secret %s", secretName)
	}
	for _, k := range keys {
		if !strings.Contains(doc, "--from-literal="+k+"=") {
			t.Errorf("docs/operations.md does not create Secret key %s (--from-literal=%s=…)", k, k)
		}
	}
}

// containerPort resolves a port by number or name among c's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func checkPorts(t *testing.T, r rendered, d *appsv1.Deployment, c corev1.Container, cfg config.Config) {
	t.Helper()
	port := adminPort(t, cfg)
	if got, ok := containerPort(c, intstr.FromInt32(port)); !ok || got != port {
		t.Errorf("container ports %+v do not include admin.listen's port %d", c.Ports, port)
	}
	for _, s := range r.services {
		if s.Namespace != d.Namespace {
			t.Errorf("Service %s is in namespace %q, the Deployment in %q", s.Name, s.Namespace, d.Namespace)
		}
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			got, ok := containerPort(c, target)
			if !ok {
				t.Errorf("Service %s port %s: targetPort %s is no port of the container", s.Name, sp.Name, target.String())
			} else if got != port {
				t.Errorf("Service %s port %s reaches container port %d, admin.listen is on %d", s.Name, sp.Name, got, port)
			}
		}
	}
}

// statsStub is an empty pipeline, for building the admin handler.
type statsStub struct{}

func (statsStub) Stats() pipeline.Stats { return pipeline.Stats{} }

// checkProbes requests every probe's path from the admin server's real
// handler: each must answer 200. Liveness and startup are /healthz,
// readiness /readyz.
func checkProbes(t *testing.T, c corev1.Container, cfg config.Config) {
	t.Helper()
	port := adminPort(t, cfg)
	h := admin.New(cfg.Admin, admin.Deps{Stats: statsStub{}}, nil).Handler()
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe of %s", p.name, p.path)
			continue
		}
		g := p.probe.HTTPGet
		if got, ok := containerPort(c, g.Port); !ok || got != port {
			t.Errorf("%s: port %s is not admin.listen's port %d", p.name, g.Port.String(), port)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s: scheme %s; the admin server speaks plain HTTP", p.name, g.Scheme)
		}
		if g.Path != p.path {
			t.Errorf("%s: path %s, want %s", p.name, g.Path, p.path)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, g.Path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: GET %s answers %d from the admin server, want 200", p.name, g.Path, rec.Code)
		}
	}
	// /readyz checks the brokers and the catalog within 2 s.
	if p := c.ReadinessProbe; p != nil && p.TimeoutSeconds < 3 {
		t.Errorf("readinessProbe timeoutSeconds %d: /readyz may take 2 s, give it 3 or more", p.TimeoutSeconds)
	}
}

func checkShutdown(t *testing.T, d *appsv1.Deployment, cfg config.Config) {
	t.Helper()
	bound := shutdownBound(t, cfg)
	g := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if g == nil {
		t.Fatalf("terminationGracePeriodSeconds is unset (30s); shutdown_grace %s needs up to %s", cfg.Pipeline.ShutdownGrace, bound)
	}
	if got := time.Duration(*g) * time.Second; got < bound {
		t.Errorf("terminationGracePeriodSeconds %d < %s, the longest shutdown with shutdown_grace %s (3 × grace + leaving the group + stopping the admin server): the kubelet would SIGKILL a clean shutdown",
			*g, bound, cfg.Pipeline.ShutdownGrace)
	}
}

func checkMemory(t *testing.T, c corev1.Container, cfg config.Config) {
	t.Helper()
	b := memoryBudget(t, cfg)
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatalf("no memory limit; the budget of replay.yaml is %d MiB", b.Total()>>20)
	}
	t.Logf("memory budget %d MiB (base %d, %d records × %d KiB, sink %d, fetch %d, live %d MiB); limit %s",
		b.Total()>>20, b.Base>>20, b.Records, b.PerRecord>>10, b.Sink>>20, b.Fetch>>20, b.Live>>20, limit.String())
	if limit.Value() < b.Total() {
		t.Errorf("memory limit %s < the budget of replay.yaml, %d MiB (docs/operations.md, Memory)", limit.String(), b.Total()>>20)
	}
	if req, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok || req.Cmp(limit) != 0 {
		t.Errorf("memory request %s, want it equal to the limit %s", req.String(), limit.String())
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no CPU request")
	}
	var soft string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			soft = e.Value
		}
	}
	n, err := parseGoMemLimit(soft)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q: %v", soft, err)
	}
	if n < b.Total() || n >= limit.Value() {
		t.Errorf("GOMEMLIMIT %s: want it at or above the budget (%d MiB), below the limit %s", soft, b.Total()>>20, limit.String())
	}
}

// parseGoMemLimit parses a GOMEMLIMIT value: bytes with an optional B,
// KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("not set; the Go runtime would not know the container's limit")
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

func checkSecurity(t *testing.T, r rendered, d *appsv1.Deployment, c corev1.Container) {
	t.Helper()
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if ps != nil && ps.RunAsUser != nil && *ps.RunAsUser != dockerfileUID(t) {
		t.Errorf("pod runAsUser %d, the image's USER is %d", *ps.RunAsUser, dockerfileUID(t))
	}
	cs := c.SecurityContext
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
		t.Error("container securityContext: want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped")
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	if _, ok := r.accounts[d.Namespace+"/"+sa]; !ok {
		t.Errorf("serviceAccountName %q is not in the build", sa)
	}
}

// checkSelectors checks that the Deployment, the Service and the
// PodDisruptionBudget select the Deployment's pods.
func checkSelectors(t *testing.T, r rendered, d *appsv1.Deployment) {
	t.Helper()
	pod := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(pod) {
		t.Errorf("Deployment selector %v does not select its pod template's labels %v", d.Spec.Selector, pod)
	}
	for _, s := range r.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(pod) {
			t.Errorf("Service %s selector %v does not select the replay pods %v", s.Name, s.Spec.Selector, pod)
		}
	}
	for _, p := range r.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(pod) {
			t.Errorf("PodDisruptionBudget %s selector %v does not select the replay pods %v", p.Name, p.Spec.Selector, pod)
		}
		if p.Namespace != d.Namespace {
			t.Errorf("PodDisruptionBudget %s is in namespace %q, the Deployment in %q", p.Name, p.Namespace, d.Namespace)
		}
		// A budget that allows no eviction blocks every node drain.
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 {
			t.Errorf("PodDisruptionBudget %s: want maxUnavailable ≥ 1, got %v", p.Name, p.Spec.MaxUnavailable)
		}
	}
	if n := d.Spec.Replicas; n == nil || *n < 1 {
		t.Errorf("replicas %v", n)
	}
}

// checkWithBinary runs the binary built as the Dockerfile builds it with
// the container's args and environment, with --print-config: it exits 0
// only when the flags parse and the configuration validates.
func checkWithBinary(t *testing.T, c corev1.Container, cfgFile string, environ []string) {
	bin := replayBinary(t)
	args := slices.Clone(c.Args)
	args[slices.Index(args, "--config")+1] = cfgFile
	cmd := exec.Command(bin, append(args, "--print-config")...)
	cmd.Env = environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay %s --print-config: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var printed struct {
		RunID string `json:"run_id"`
		Admin struct {
			Token string `json:"token"`
		} `json:"admin"`
	}
	if err := yaml.Unmarshal(out, &printed); err != nil {
		t.Fatal(err)
	}
	if printed.RunID == "" || printed.Admin.Token != "REDACTED" {
		t.Errorf("replay --print-config shows run_id %q and admin.token %q; want the run and the token from the Secret, redacted",
			printed.RunID, printed.Admin.Token)
	}
}

// TestParseGoMemLimit pins the GOMEMLIMIT parser the memory check uses.
func TestParseGoMemLimit(t *testing.T) {
	for in, want := range map[string]int64{"920MiB": 920 << 20, "1GiB": 1 << 30, "12345": 12345, "64KiB": 64 << 10} {
		if got, err := parseGoMemLimit(in); err != nil || got != want {
			t.Errorf("parseGoMemLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseGoMemLimit("lots"); err == nil {
		t.Error("parseGoMemLimit(lots) did not fail")
	}
}
