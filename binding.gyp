{
  # Builds the addon with Node's own headers, OpenSSL and libuv (node-gyp supplies their include
  # paths from the Node installation; symbols resolve against the node binary at load time).
  # System libssl is never linked. LEGATO_SANITIZE=1 builds with ASan + UBSan for the
  # sanitizer run of the test suite (see test/asan.js); that build also has allocation fault
  # injection (LG_FAULT_INJECTION: the binding's `_faults`, used by test/faults.spec.js).
  # LEGATO_WERROR=1 (set by .ci/run) makes warnings errors; a user's source build does not.
  "variables": {
    "legato_sanitize%": "<!(node -p \"process.env.LEGATO_SANITIZE === '1' ? 1 : 0\")",
    "legato_werror%": "<!(node -p \"process.env.LEGATO_WERROR === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "legato",
      "sources": [
        "src/lg_addon.c",
        "src/lg_jsconf.c",
        "src/lg_common.c",
        "src/lg_config.c",
        "src/lg_engine.c",
        "src/lg_worker.c",
        "src/lg_listener.c",
        "src/lg_conn.c",
        "src/lg_relay.c",
        "src/lg_resolve.c",
        "src/lg_dial.c",
        "src/lg_event.c",
        "src/lg_connect.c",
        "src/lg_verify.c",
        "src/lg_auth.c",
        "src/lg_protect.c",
        "src/lg_tls.c",
        "src/lg_rec.c",
        "src/lg_suspend.c",
        "src/lg_tls_ctx.c",
        "src/lg_http.c",
        "src/lg_cidr.c",
        "src/lg_limit.c",
        "src/lg_proxyproto.c",
        "src/lg_policy.c",
        "src/lg_hello.c",
        "src/lg_name.c",
        "src/lg_ja.c",
        "src/lg_digest.c",
        "src/lg_balancer.c",
        "src/lg_affinity.c",
        "src/lg_cpu.c",
        "src/lg_router.c",
        "src/lg_drr.c",
        "src/lg_theap.c",
        "src/lg_buf.c"
      ],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags_c": [
        "-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
        "-fvisibility=hidden", "-O2", "-g"
      ],
      "cflags_c!": ["-std=gnu99"],
      "conditions": [
        ["legato_werror==1", {
          "cflags_c": ["-Werror"]
        }],
        ["legato_sanitize==1", {
          "defines": ["LG_FAULT_INJECTION"],
          "cflags_c": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                       "-fno-sanitize-recover=undefined", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
