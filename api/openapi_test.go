package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// openAPIDoc is the part of an OpenAPI 3 document these tests read.
type openAPIDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Info       map[string]any                  `yaml:"info"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components map[string]map[string]any       `yaml:"components"`
	Security   []map[string][]string           `yaml:"security"`
}

type openAPIParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type openAPIOperation struct {
	OperationID string                 `yaml:"operationId"`
	Parameters  []openAPIParam         `yaml:"parameters"`
	Responses   map[string]yaml.Node   `yaml:"responses"`
	Security    *[]map[string][]string `yaml:"security"`
}

var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// loadOpenAPI parses api/openapi.yaml, failing the test if it is not valid YAML.
func loadOpenAPI(t *testing.T) (openAPIDoc, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	var generic map[string]any
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	return doc, generic
}

// specOperations returns "METHOD /path" → operation for every operation in the spec.
func specOperations(t *testing.T, doc openAPIDoc) map[string]openAPIOperation {
	t.Helper()
	ops := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for key, node := range item {
			if !slices.Contains(openAPIMethods, key) {
				continue // parameters, summary, description, servers, $ref
			}
			var op openAPIOperation
			if err := node.Decode(&op); err != nil {
				t.Errorf("%s %s: operation does not decode: %v", strings.ToUpper(key), path, err)
				continue
			}
			ops[strings.ToUpper(key)+" "+path] = op
		}
	}
	return ops
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// registeredRoutes returns "METHOD /path" (OpenAPI path syntax) for every route of Handler().
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	engine, ok := New(Options{}).Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() is not a *gin.Engine")
	}
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		routes[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(routes) == 0 {
		t.Fatalf("Handler() registers no routes")
	}
	return routes
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestOpenAPIMatchesRoutes checks both directions: every route Handler()
// registers is documented, and every documented operation is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	ops := specOperations(t, doc)
	routes := registeredRoutes(t)

	var undocumented, unregistered []string
	for _, r := range sortedKeys(routes) {
		if _, ok := ops[r]; !ok {
			undocumented = append(undocumented, r)
		}
	}
	for _, op := range sortedKeys(ops) {
		if !routes[op] {
			unregistered = append(unregistered, op)
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("routes registered in Handler() but missing from openapi.yaml:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(unregistered) > 0 {
		t.Errorf("operations in openapi.yaml that Handler() does not register:\n  %s", strings.Join(unregistered, "\n  "))
	}
}

// TestOpenAPIWellFormed checks the document's structure: version, unique
// operation ids, responses, declared path parameters, security schemes and
// that every local $ref resolves.
func TestOpenAPIWellFormed(t *testing.T) {
	doc, generic := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Info["title"] == nil || doc.Info["version"] == nil {
		t.Errorf("info needs title and version")
	}
	ops := specOperations(t, doc)
	if len(ops) == 0 {
		t.Fatalf("openapi.yaml has no operations")
	}

	schemes := doc.Components["securitySchemes"]
	checkSecurity := func(where string, reqs []map[string][]string) {
		for _, req := range reqs {
			for name := range req {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s: security scheme %q is not in components.securitySchemes", where, name)
				}
			}
		}
	}
	checkSecurity("top level", doc.Security)

	seen := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	statusCode := regexp.MustCompile(`^[1-5]([0-9]{2}|XX)$`)
	for _, key := range sortedKeys(ops) {
		op := ops[key]
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		} else if prev, dup := seen[op.OperationID]; dup {
			t.Errorf("%s: operationId %q already used by %s", key, op.OperationID, prev)
		} else {
			seen[op.OperationID] = key
		}
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses", key)
		}
		for code := range op.Responses {
			if code != "default" && !statusCode.MatchString(code) {
				t.Errorf("%s: response key %q is not a status code", key, code)
			}
		}
		if op.Security != nil {
			checkSecurity(key, *op.Security)
		}

		// Every {param} in the path is declared as a required path parameter,
		// on the operation or on its path item.
		path := key[strings.IndexByte(key, ' ')+1:]
		declared := map[string]bool{}
		var params []openAPIParam
		if node, ok := doc.Paths[path]["parameters"]; ok {
			if err := node.Decode(&params); err != nil {
				t.Errorf("%s: path parameters do not decode: %v", path, err)
			}
		}
		params = append(params, op.Parameters...)
		for _, p := range params {
			if p.Ref != "" {
				resolved, ok := resolveRef(generic, p.Ref)
				if !ok {
					continue // reported by the $ref check below
				}
				m, _ := resolved.(map[string]any)
				p.Name, _ = m["name"].(string)
				p.In, _ = m["in"].(string)
				p.Required, _ = m["required"].(bool)
			}
			if p.In == "path" {
				if !p.Required {
					t.Errorf("%s: path parameter %q must be required", key, p.Name)
				}
				declared[p.Name] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", key, m[1])
			}
		}
	}

	// Every local $ref resolves.
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "$ref" {
					ref, _ := child.(string)
					if _, ok := resolveRef(generic, ref); !ok {
						t.Errorf("%s: $ref %q does not resolve", where, ref)
					}
					continue
				}
				walk(where+"/"+k, child)
			}
		case []any:
			for _, child := range v {
				walk(where, child)
			}
		}
	}
	walk("#", generic)
}

// resolveRef follows a local JSON pointer ("#/components/schemas/Camera").
func resolveRef(doc map[string]any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestOpenAPIServed checks GET /openapi.yaml serves the embedded document.
func TestOpenAPIServed(t *testing.T) {
	want, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	New(Options{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: status %d", rec.Code)
	}
	got, _ := io.ReadAll(rec.Body)
	if string(got) != string(want) {
		t.Errorf("GET /openapi.yaml does not serve api/openapi.yaml (%d bytes, want %d)", len(got), len(want))
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Errorf("Content-Type = %q, want application/yaml", ct)
	}
}
