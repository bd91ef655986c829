/* Reading a concord-gen manifest (<name>.json) and the fixture files, for consumers written in
 * plain C or C++ with no concord: only the fields a runtime needs (buffer roles, dtypes and sizes;
 * stage order, invocations, SPIR-V file, HIP launcher and bindings). */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 64
#define MAXS 32

typedef struct { int index; char role[16]; char dtype[8]; size_t bytes; } buf_t;
typedef struct { char spv[256]; char launcher[256]; uint32_t invocations, per_workgroup; int nbind; int bind[MAXB]; } stage_t;

static inline char* slurp(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* p = (char*)malloc((size_t)n + 1);
  if (fread(p, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(p); return NULL; }
  fclose(f);
  p[n] = 0;
  if (len) *len = (size_t)n;
  return p;
}

static inline int parse_manifest(const char* js, buf_t* bufs, int* nb, stage_t* st, int* ns) {
  const char* p = strstr(js, "\"buffers\"");
  const char* stages = strstr(js, "\"stages\"");
  if (!p || !stages) return -1;
  *nb = 0;
  while ((p = strstr(p, "{\"index\": ")) && p < stages && *nb < MAXB) {
    buf_t* b = &bufs[(*nb)++];
    if (sscanf(p, "{\"index\": %d, \"name\": \"%*[^\"]\", \"role\": \"%15[^\"]\", \"dtype\": \"%7[^\"]\"", &b->index, b->role, b->dtype) != 3) return -2;
    const char* q = strstr(p, "\"bytes\": ");
    b->bytes = (size_t)strtoull(q + 9, NULL, 10);
    p = q;
  }
  *ns = 0;
  p = stages;
  while ((p = strstr(p, "{\"name\": ")) && *ns < MAXS) {
    stage_t* s = &st[(*ns)++];
    const char* q = strstr(p, "\"invocations\": ");
    s->invocations = (uint32_t)strtoul(q + 15, NULL, 10);
    q = strstr(p, "\"invocations_per_workgroup\": ");
    const char* obj_end = strstr(p, "]}");  /* this stage's object ends after its bindings */
    s->per_workgroup = q && (!obj_end || q < obj_end) ? (uint32_t)strtoul(q + 29, NULL, 10) : 256u;
    q = strstr(p, "\"spirv\": \"");
    sscanf(q + 10, "%255[^\"]", s->spv);
    q = strstr(p, "\"hip_launcher\": \"");
    sscanf(q + 17, "%255[^\"]", s->launcher);
    q = strstr(p, "\"bindings\": [");
    const char* end = strstr(q, "]}");
    s->nbind = 0;
    while ((q = strstr(q, "\"buffer\": ")) && q < end) s->bind[s->nbind++] = atoi(q + 10), q += 10;
    p = end;
  }
  return 0;
}

