import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { GpuError } from '../src/gpu/context.js';
import { runDispatches } from '../src/gpu/dispatch.js';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sourceLine } from '../src/gpu/kernel.js';
import { PRELUDE_FILE, shaderOwnLines, shaderSources } from '../src/gpu/shader-sources.generated.js';
import { PACKAGE_ROOT } from './support/paths.js';

describe('kernels: reflection, binding by name, compile errors', () => {
  it('builds the bind group layout from the shader and binds buffers by the shader\'s names', async () => {
    const ctx = await testContext();
    ctx.defineShader('test_scale.wgsl', `
      override WG: u32 = 32u;
      struct Params { n: u32, scale: f32 }
      @group(0) @binding(3) var<uniform> params: Params;
      @group(0) @binding(1) var<storage, read> x: array<f32>;
      @group(0) @binding(0) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(WG) fn main(@builtin(global_invocation_id) g: vec3u) {
        if (g.x < params.n) { y[g.x] = x[g.x] * params.scale; }
      }`);
    const k = ctx.kernel('test_scale.wgsl', 'main', { WG: 16 });
    expect(k.workgroupSize).to.deep.equal([16, 1, 1]);
    expect(k.bindings.map((b) => `${b.binding}:${b.name}:${b.kind}`)).to.deep.equal(['0:y:storage', '1:x:read-only-storage', '3:params:uniform']);
    const x = ctx.upload(new Float32Array([1, 2, 3, 4, 5]));
    const y = ctx.storage(20);
    ctx.poison(y);
    await runDispatches(ctx, [{ kernel: k, bindGroup: k.bind({ params: k.params({ n: 5, scale: 2.5 }), x, y }), workgroups: [1, 1, 1], label: 'scale' }]);
    expect([...(await ctx.readF32(y, 5))]).to.deep.equal([2.5, 5, 7.5, 10, 12.5]);
    expect(() => k.bind({ x, y })).to.throw(GpuError, /missing buffer for binding "params"/);
    expect(() => k.bind({ params: x, x, y, z: y })).to.throw(GpuError, /no binding named z/);
    expect(() => k.params({ n: 1 })).to.throw(GpuError, /no value for params.scale/);
    expect(() => ctx.kernel('test_scale.wgsl', 'main', { TILE: 4 })).to.throw(GpuError, /declares no override named "TILE"/);
    expect(() => ctx.kernel('nope.wgsl')).to.throw(GpuError, /no shader named shaders\/nope.wgsl/);
  });

  it('a WGSL compile error names the shader file, line and column', async () => {
    const ctx = await testContext();
    ctx.defineShader('test_broken.wgsl', [
      '@group(0) @binding(0) var<storage, read_write> y: array<f32>;',
      '@compute @workgroup_size(1) fn main() {',
      '  y[0] = undefined_name * 2.0;',
      '}',
    ].join('\n'));
    const k = ctx.kernel('test_broken.wgsl');
    let message = '';
    try {
      await k.ready;
    } catch (e) {
      expect(e).to.be.instanceOf(GpuError);
      message = (e as Error).message;
    }
    expect(message).to.match(/^shaders\/test_broken\.wgsl:3:\d+: error: .*undefined_name/);
    // The error went to the kernel's error scope, not to the device's uncaptured errors.
    expect(() => ctx.throwIfFailed()).to.not.throw();
  });
});

describe('shaders: the shared prelude', () => {
  it('each embedded shader is its file, line for line, with shaders/prelude.wgsl after it', () => {
    const prelude = readFileSync(join(PACKAGE_ROOT, 'shaders', PRELUDE_FILE), 'utf8');
    const files = readdirSync(join(PACKAGE_ROOT, 'shaders')).filter((f) => f.endsWith('.wgsl') && f !== PRELUDE_FILE);
    expect(Object.keys(shaderSources).sort()).to.deep.equal(files.sort());
    for (const f of files) {
      const own = readFileSync(join(PACKAGE_ROOT, 'shaders', f), 'utf8').replace(/\n*$/, '\n');
      expect(shaderSources[f].startsWith(own), `${f} starts with its own file`).to.equal(true);
      expect(shaderSources[f].slice(own.length), `${f} ends with the prelude`).to.equal(prelude);
      expect(shaderOwnLines[f], `${f}: its own line count`).to.equal(own.split('\n').length - 1);
    }
  });

  it('a compiler error past a shader\'s own lines is named as a line of the prelude', () => {
    const own = shaderOwnLines['activation.wgsl'];
    expect(sourceLine('activation.wgsl', own)).to.equal(`shaders/activation.wgsl:${own}`);
    expect(sourceLine('activation.wgsl', own + 3)).to.equal('shaders/prelude.wgsl:3');
    expect(sourceLine('my_own.wgsl', 500)).to.equal('shaders/my_own.wgsl:500');
  });
});
