/**
 * A missing API key: refused at once for the provider's own API, naming the environment variable to
 * set; a server of your own through `baseUrl` (Ollama, vLLM) may need none.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { anthropicModel } from '../../agents/anthropic.js';
import type { HttpModelOptions } from '../../agents/http.js';
import type { ModelPort } from '../../agents/model.js';
import { openAIModel } from '../../agents/openai.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

const adapters: Array<[string, (options: HttpModelOptions) => ModelPort, string, string]> = [
  ['openAIModel', openAIModel, 'OPENAI_API_KEY', 'OPENAI_BASE_URL'],
  ['anthropicModel', anthropicModel, 'ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL'],
];

describe.each(adapters)('%s without a key', (_name, make, keyVariable, urlVariable) => {
  it(`names ${keyVariable} for the provider's API`, () => {
    vi.stubEnv(keyVariable, undefined);
    vi.stubEnv(urlVariable, undefined);
    expect(() => make({ model: 'm' })).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_OPTION',
        details: expect.objectContaining({ option: 'apiKey' }),
        message: expect.stringContaining(`set ${keyVariable} or pass \`apiKey\``),
      }),
    );
  });

  it('needs none for a local server', () => {
    vi.stubEnv(keyVariable, undefined);
    expect(make({ model: 'llama3.2', baseUrl: 'http://localhost:11434/v1' }).name).toContain('llama3.2');
    vi.stubEnv(urlVariable, 'http://127.0.0.1:8000/v1');
    expect(make({ model: 'llama3.2' }).name).toContain('llama3.2');
  });

  it(`takes the key from ${keyVariable}`, () => {
    vi.stubEnv(keyVariable, 'sk-from-env');
    vi.stubEnv(urlVariable, undefined);
    expect(make({ model: 'm' }).name).toContain('m');
  });
});
