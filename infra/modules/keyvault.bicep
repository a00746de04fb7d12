// Key Vault for the app's own secret: the gateway API keys. The Function App reads it through a Key Vault
// reference (@Microsoft.KeyVault(SecretUri=...)) with its managed identity, so the value never appears in
// app settings, parameters files or deployment outputs.
param name string
param location string
param tags object = {}
@secure()
@description('Comma-separated API keys accepted by the chat API.')
param gatewayApiKeys string
param secretName string = 'gateway-api-keys'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    //checkov:skip=CKV_AZURE_109: the Flex Consumption app has no VNet here, so the vault must accept public traffic; only Entra ID principals with Key Vault Secrets User can read it
    //checkov:skip=CKV_AZURE_110: purge protection would block `azd down --purge` and re-provisioning under the same name for up to 90 days; the vault holds only regenerable gateway keys
    //checkov:skip=CKV_AZURE_189: public network access is needed without a VNet (see CKV_AZURE_109)
    //checkov:skip=CKV_AZURE_42: 'recoverable' here means purge protection, declined for the reason given for CKV_AZURE_110 (soft delete is on)
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource gatewayKeys 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    //checkov:skip=CKV_AZURE_41: an expiry would silently lock every client out of the chat API; keys are rotated by adding a new key, then removing the old one (README runbook)
    value: gatewayApiKeys
    contentType: 'text/plain; comma-separated API keys'
  }
}

output id string = vault.id
output name string = vault.name
output gatewayKeysSecretName string = gatewayKeys.name
// Without a version, the reference follows the latest version of the secret (rotation without redeploy).
output gatewayKeysSecretUri string = '${vault.properties.vaultUri}secrets/${secretName}'
