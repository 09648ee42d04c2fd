// The DApp's build: `vite build --config app/vite.config.js` writes app/dist/, which
// `python -m voicemarket.index serve` serves at / (docs/app.md). No CDN, no remote fonts.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

const root = fileURLToPath(new URL('.', import.meta.url))

export default defineConfig({
  root,
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 900,
  },
  server: { proxy: { '^/(models|accounts|creators|operators|stats|health|events|assets|ipfs|app-config.json)': 'http://127.0.0.1:8600' } },
})
