// Shared setup for bench.mjs / validate.mjs: the prebuilt CPU llama.cpp from @node-llama-cpp/linux-x64,
// never a source build or a download, and the llama.cpp log lines kept so we can report which
// ggml-cpu variant (haswell, zen4, ...) the dynamic backend loader picked on this CPU.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

export const logLines = [];
export const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.debug,
    logger: (level, message) => {
        logLines.push(message.trim());
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) console.error("[llama.cpp]", message.trim());
    },
});

export async function describeLlama() {
    const variant = logLines.map((l) => /libggml-cpu-([a-z0-9_]+)\.so/.exec(l)).filter(Boolean).map((m) => m[1]);
    return {
        release: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
        build_type: llama.buildType,
        gpu: llama.gpu,
        cpu_variant_loaded: variant.length ? variant[variant.length - 1] : "unknown",
        system_info: llama.systemInfo,
    };
}

export async function loadModel(modelPath) {
    return llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
}

export function parseArgs(argv, defaults) {
    const out = {...defaults, _: []};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a.startsWith("--")) {
            const k = a.slice(2);
            const v = argv[i + 1];
            if (v === undefined || v.startsWith("--")) out[k] = true;
            else { out[k] = v; i++; }
        } else out._.push(a);
    }
    return out;
}
